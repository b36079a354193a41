"""The `parse_regex` processor; its options and examples are in README.md.

- `processor`: `parse_regex`: the named groups of a regular expression become fields.
"""
