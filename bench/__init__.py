"""Benchmark scenarios: `python -m bench` (or `make bench`)."""
