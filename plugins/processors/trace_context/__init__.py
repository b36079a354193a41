"""The `trace_context` processor; its options and examples are in README.md.

- `processor`: `trace_context`: find the trace a log line belongs to and set normalised `trace_id` / `span_id` fields.
"""
