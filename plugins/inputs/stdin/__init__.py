"""The `stdin` input; its options and examples are in README.md.

- `input`: `stdin`: newline-delimited log lines from standard input.
"""
