"""The `metrics_to_emf` processor; its options and examples are in README.md.

- `processor`: `metrics_to_emf` processor: metric records -> Embedded Metric Format documents (the EMF path to
  CloudWatch).
"""
