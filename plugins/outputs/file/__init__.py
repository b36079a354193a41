"""The `file` output; its options and examples are in README.md.

- `output`: `file`: append records to local files as JSON lines (or message text), with size rotation.
- `paths`: Where the `file` output writes: its path template, confined to its directory, and private files and
  directories.
"""
