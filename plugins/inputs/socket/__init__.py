"""The `socket` input; its options and examples are in README.md.

- `input`: `socket` input: newline-delimited text or JSON lines over TCP, UDP or unix sockets.
"""
