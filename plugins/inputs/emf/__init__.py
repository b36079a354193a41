"""The `emf` input; its options and examples are in README.md.

- `input`: `emf` input: Embedded Metric Format documents over TCP and UDP, as the aws-embedded-metrics libraries send
  them.
"""
