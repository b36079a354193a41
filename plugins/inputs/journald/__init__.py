"""The `journald` input; its options and examples are in README.md.

- `input`: `journald` input: systemd journal entries, read through `journalctl -o json --follow`.
"""
