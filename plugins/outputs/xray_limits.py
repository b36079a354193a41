"""AWS X-Ray `PutTraceSegments` limits: the one place the `xray` output takes them from.

Checked on 2026-11-26:

- at most 50 documents per call: what the AWS X-Ray daemon sends (its
  processor's BatchSize, 50, with a 1 s idle flush) and what X-Ray's own
  clients assume; the API reference states no larger count, so we do not go
  past what the reference client does;
- a segment document at most 64 KiB (the "Segment document size" quota of the
  X-Ray endpoints and quotas page), counted on the document's UTF-8 bytes.

The request size follows from these (50 x 64 KiB); no separate limit is declared.
Users may lower the count in `batch:` (the config validator rejects a higher
value and names the source); the per-document limit cannot be changed.
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-11-26"
PUT_TRACE_SEGMENTS = "https://docs.aws.amazon.com/xray/latest/api/API_PutTraceSegments.html"
DAEMON_BATCH = "https://github.com/aws/aws-xray-daemon/blob/master/pkg/cfg/cfg.go"
QUOTAS = "https://docs.aws.amazon.com/general/latest/gr/xray.html"

MAX_DOCUMENTS = Limit(50, DAEMON_BATCH, CHECKED)
MAX_DOCUMENT_BYTES = Limit(64 * 1024, QUOTAS, CHECKED)
IDLE_FLUSH_SECONDS = 1.0  # the daemon's IdleTimeoutMillisecond

LIMITS = OutputLimits(max_events=MAX_DOCUMENTS, max_record_bytes=MAX_DOCUMENT_BYTES)
