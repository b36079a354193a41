"""The `internal_metrics` input; its options and examples are in README.md.

- `input`: `internal_metrics` input: the collector's own counters as metric records.
"""
