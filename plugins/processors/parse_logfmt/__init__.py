"""The `parse_logfmt` processor; its options and examples are in README.md.

- `processor`: `parse_logfmt`: `key=value` pairs of a field (by default `message`) become fields.
- `logfmt`: A logfmt decoder: `level=info msg="hello \"world\"" took=12ms cached`.
"""
