"""The `parse_json` processor; its options and examples are in README.md.

- `processor`: `parse_json`: parse a field of each log record (by default `message`) as JSON.
"""
