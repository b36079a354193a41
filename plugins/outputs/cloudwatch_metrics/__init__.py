"""The `cloudwatch_metrics` output; its options and examples are in README.md.

- `output`: `cloudwatch_metrics` output: metric records to Amazon CloudWatch with PutMetricData.
"""
