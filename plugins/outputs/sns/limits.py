"""Amazon SNS `PublishBatch` limits: the one place the `sns` output takes them from.

Checked on 2026-12-06 against the API reference
(https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html):
- at most 10 entries per PublishBatch request;
- the total size of all messages of one request at most 262,144 bytes (256 KiB), which is also the
  largest single message (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html);
- a `Subject` at most 100 characters, ASCII, no line breaks (API_Publish.html).
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-12-06"
PUBLISH_BATCH = "https://docs.aws.amazon.com/sns/latest/api/API_PublishBatch.html"
PUBLISH = "https://docs.aws.amazon.com/sns/latest/api/API_Publish.html"

MAX_ENTRIES = Limit(10, PUBLISH_BATCH, CHECKED)
MAX_REQUEST_BYTES = Limit(262_144, PUBLISH_BATCH, CHECKED)
MAX_MESSAGE_BYTES = Limit(262_144, PUBLISH, CHECKED)
MAX_SUBJECT_CHARS = 100

LIMITS = OutputLimits(max_events=MAX_ENTRIES, max_bytes=MAX_REQUEST_BYTES, max_record_bytes=MAX_MESSAGE_BYTES)
