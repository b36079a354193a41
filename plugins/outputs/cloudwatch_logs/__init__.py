"""The `cloudwatch_logs` output; its options and examples are in README.md.

- `output`: `cloudwatch_logs`: log records to CloudWatch Logs with PutLogEvents.
- `limits`: CloudWatch Logs PutLogEvents limits: every value in one place, with its source and the date it was
  checked.
- `requests`: Records of one log stream -> PutLogEvents event lists that obey every rule of the API.
- `resources`: `LogResources`: what the `cloudwatch_logs` output knows about log groups and streams, and how it
  creates them.
"""
