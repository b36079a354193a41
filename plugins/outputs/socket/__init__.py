"""The `socket` output; its options and examples are in README.md.

- `output`: `socket` output: newline-delimited text or JSON lines to a TCP, UDP or unix socket.
"""
