"""The `blackhole` output; its options and examples are in README.md.

- `output`: `blackhole`: count and discard everything; the sink of benchmarks and dry runs.
"""
