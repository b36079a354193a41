"""The `kinesis` output; its options and examples are in README.md.

- `output`: `kinesis`: records to an Amazon Kinesis data stream with PutRecords.
- `limits`: Amazon Kinesis Data Streams `PutRecords` limits: the one place the `kinesis` output takes them from.
"""
