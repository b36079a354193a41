"""The `generator` input; its options and examples are in README.md.

- `input`: `generator`: synthetic logs, metrics or traces, for trying a pipeline and for benchmarks.
"""
