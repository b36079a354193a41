"""Amazon Data Firehose `PutRecordBatch` limits: the one place the `firehose` output takes them from.

Checked against the API reference and the service quota page on 2026-11-26:

- at most 500 records per call (`Records`: array of 1 to 500 items);
- a record's `Data` at most 1,000 KiB = 1,024,000 bytes *before* base64 (the
  `Record` shape's length constraint, 1024000);
- the whole call: the API reference says "4 MB", the quota page "4 MiB". We
  take the smaller reading, 4,000,000 bytes, counted as the sum of the records'
  `Data` sizes before base64 (what the per-record limit also counts), so a
  request never exceeds the limit whichever reading AWS enforces.

Users may lower the first two in `batch:` (the config validator rejects higher
values and names these pages); the per-record limit cannot be changed.
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-11-26"
PUT_RECORD_BATCH = "https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html"
RECORD = "https://docs.aws.amazon.com/firehose/latest/APIReference/API_Record.html"
QUOTAS = "https://docs.aws.amazon.com/firehose/latest/dev/limits.html"

MAX_RECORDS = Limit(500, PUT_RECORD_BATCH, CHECKED)
MAX_REQUEST_BYTES = Limit(4_000_000, PUT_RECORD_BATCH, CHECKED)
MAX_RECORD_BYTES = Limit(1_024_000, RECORD, CHECKED)

LIMITS = OutputLimits(max_events=MAX_RECORDS, max_bytes=MAX_REQUEST_BYTES, max_record_bytes=MAX_RECORD_BYTES)
