"""The `parse_timestamp` processor; its options and examples are in README.md.

- `processor`: `parse_timestamp`: a field holding a time in text (or epoch numbers) becomes the record's time.
"""
