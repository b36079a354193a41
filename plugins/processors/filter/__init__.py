"""The `filter` processor; its options and examples are in README.md.

- `processor`: `filter`: keep or drop records by conditions on their fields.
"""
