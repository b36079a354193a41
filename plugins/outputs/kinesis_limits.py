"""Amazon Kinesis Data Streams `PutRecords` limits: the one place the `kinesis` output takes them from.

Checked against the API reference on 2026-11-26 (AWS raised them in 2025:
records up to 10 MiB, requests up to 10 MiB, from 1 MiB and 5 MiB):

- at most 500 records per request (`Records`: array of 1 to 500 items);
- the whole request at most 10 MiB = 10,485,760 bytes, *including partition
  keys*: each record counts its `Data` (before base64) plus its partition key
  (UTF-8 bytes);
- each record (data + partition key) at most the stream's maximum record size:
  1 MiB unless the stream was raised (`UpdateMaxRecordSize`, shown as
  `MaxRecordSizeInKiB` by DescribeStreamSummary) up to the API maximum of
  10 MiB. The output's `max_record_size` option says which applies;
- a partition key is 1 to 256 Unicode characters.

Users may lower the request limits in `batch:` (the config validator rejects
higher values and names these pages) and `max_record_size` down to any size.
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-11-26"
PUT_RECORDS = "https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html"
REQUEST_ENTRY = "https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html"
LARGE_RECORDS = "https://docs.aws.amazon.com/streams/latest/dev/large-records.html"

MIB = 1024 * 1024

MAX_RECORDS = Limit(500, PUT_RECORDS, CHECKED)
MAX_REQUEST_BYTES = Limit(10 * MIB, PUT_RECORDS, CHECKED)
# The API's ceiling for one record (data + key); a stream accepts this much only once raised to it.
MAX_RECORD_BYTES = Limit(10 * MIB, REQUEST_ENTRY, CHECKED)
# A stream's maximum record size unless raised: what `max_record_size` defaults to.
STREAM_DEFAULT_RECORD_BYTES = Limit(1 * MIB, LARGE_RECORDS, CHECKED)
MAX_PARTITION_KEY_CHARS = Limit(256, REQUEST_ENTRY, CHECKED)

LIMITS = OutputLimits(max_events=MAX_RECORDS, max_bytes=MAX_REQUEST_BYTES, max_record_bytes=MAX_RECORD_BYTES)
