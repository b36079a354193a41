"""CloudWatch metric semantics shared by the `cloudwatch_metrics` output and the `metrics_to_emf` processor.

Both turn metric records into CloudWatch metrics (PutMetricData, or EMF documents CloudWatch Logs
extracts), under the same limits and with the same dimension options.

- `limits`: the PutMetricData limits, each with its source and the date it was checked.
- `datums`: metric records to datums: values and counts, units, storage resolution.
- `dimensions`: `append_dimensions` (`{aws:InstanceId}` and friends), resolved once at start.
- `options`: the config options both plugins declare.
"""
