"""The `xray` output; its options and examples are in README.md.

- `output`: `xray`: trace segments to AWS X-Ray (PutTraceSegments), durably, where the daemon would drop them.
- `limits`: AWS X-Ray `PutTraceSegments` limits: the one place the `xray` output takes them from.
- `telemetry`: Telemetry records about the `xray` output itself (PutTelemetryRecords), as the X-Ray daemon sends them.
"""
