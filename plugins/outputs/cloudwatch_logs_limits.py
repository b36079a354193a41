"""CloudWatch Logs PutLogEvents limits: every value in one place, with its source and the date it was checked.

Read from the current PutLogEvents API reference (checked 2026-11-26; the
same text is in botocore's `logs` service model, 1.43): 1,048,576 bytes per
batch counted as the UTF-8 messages plus 26 bytes per event; 10,000 events;
events in chronological order; "each log event can be no larger than 1 MB"
(older references said 256 KB, and collectors still disagree); the time span
of a batch cannot exceed 24 hours. Events more than 2 hours in the future or
older than 14 days (or the group's retention) are rejected one by one
(`rejectedLogEventsInfo`) while the rest of the batch is accepted.

How we read "1 MB per event": an event counts its message plus the 26-byte
overhead, and must fit a batch on its own, so the longest message is
1,048,576 - 26 = 1,048,550 UTF-8 bytes. Longer messages are split into marked
parts, never dropped. Users may lower every value (`batch.max_events`,
`batch.max_bytes`, `max_event_bytes`, `max_batch_span`), never raise it.
moto enforces none of these sizes, so the unit tests hold them.
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-11-26"
PUT_LOG_EVENTS = "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html"
CREATE_LOG_GROUP = "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html"
CREATE_LOG_STREAM = "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogStream.html"
PUT_RETENTION = "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html"

MAX_BATCH_BYTES = Limit(1_048_576, PUT_LOG_EVENTS, CHECKED)
"""Sum of the events' UTF-8 message bytes plus EVENT_OVERHEAD each."""
MAX_BATCH_EVENTS = Limit(10_000, PUT_LOG_EVENTS, CHECKED)
EVENT_OVERHEAD = Limit(26, PUT_LOG_EVENTS, CHECKED)
"""Bytes each event adds to the batch size, on top of its message."""
MAX_EVENT_BYTES = Limit(1_048_576, PUT_LOG_EVENTS, CHECKED)
"""One event ("1 MB"), counted like the batch: message bytes plus EVENT_OVERHEAD."""
MAX_BATCH_SPAN_MS = Limit(24 * 3600 * 1000, PUT_LOG_EVENTS, CHECKED)
"""Newest minus oldest timestamp in one batch, in milliseconds (exactly 24 h is allowed)."""
MAX_FUTURE_MS = Limit(2 * 3600 * 1000, PUT_LOG_EVENTS, CHECKED)
"""Events further in the future are rejected by the service (reported, not enforced here)."""
MAX_AGE_MS = Limit(14 * 24 * 3600 * 1000, PUT_LOG_EVENTS, CHECKED)
"""Older events are rejected by the service (reported, not enforced here)."""
MAX_GROUP_NAME = Limit(512, CREATE_LOG_GROUP, CHECKED)
MAX_STREAM_NAME = Limit(512, CREATE_LOG_STREAM, CHECKED)
RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
"""The values PutRetentionPolicy accepts (checked against PUT_RETENTION)."""

LIMITS = OutputLimits(max_events=MAX_BATCH_EVENTS, max_bytes=MAX_BATCH_BYTES)
"""What the driver's batcher enforces; per-event splitting and the 24 h span are the output's job."""


def max_message_bytes(
    max_event_bytes: int = MAX_EVENT_BYTES.value, max_batch_bytes: int = MAX_BATCH_BYTES.value
) -> int:
    """The longest message (UTF-8 bytes) one event may carry under these (possibly lowered) limits."""
    return min(max_event_bytes, max_batch_bytes) - EVENT_OVERHEAD.value
