"""The `stdout` output; its options and examples are in README.md.

- `output`: `stdout`: write every batch to standard output, as JSON lines or message text.
"""
