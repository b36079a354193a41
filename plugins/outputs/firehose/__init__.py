"""The `firehose` output; its options and examples are in README.md.

- `output`: `firehose`: records to an Amazon Data Firehose stream with PutRecordBatch.
- `limits`: Amazon Data Firehose `PutRecordBatch` limits: the one place the `firehose` output takes them from.
"""
