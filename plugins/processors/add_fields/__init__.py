"""The `add_fields` processor; its options and examples are in README.md.

- `processor`: `add_fields`: set constant fields on every record, with `{host}`-style templates.
"""
