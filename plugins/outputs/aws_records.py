"""Records to blobs, and per-record answers to outcomes: shared by the `firehose` and `kinesis` outputs.

- `blob_encoder(format, newline)`: one `bytes` blob per record, the whole batch
  in one pass. `json`: the record as one JSON document (the `json` codec of
  `encoding.py`: bytes decoded as UTF-8, metrics as objects, odd values made
  serialisable rather than failing the batch). `raw`: the `message` field only
  (bytes as they are, str as UTF-8); a record without one is written as JSON.
  `newline` ends every blob with `\\n`, so that blobs concatenated at the
  destination (Firehose to S3 adds no delimiter) stay one record per line.
- `pack_spans(sizes, limit)`: cuts a run of blobs into consecutive groups of at
  most `limit` bytes, so that many small events travel as one API record.
- `entry_outcomes(entries)`: reads the per-record answers of PutRecordBatch /
  PutRecords (`ErrorCode` on a failed entry) into driver outcomes: the
  throttling and internal error codes the APIs document are retried, any other
  code is permanent (the record is dead-lettered). `spread` gives each event
  the outcome of the packed entry that carried it. `throttled_entries` says
  whether any entry was refused for throughput (THROTTLED: the driver also
  slows the output's send rate).
- `mismatched_answer(...)`: logs, once a minute, an answer with another number
  of results than records sent, and gives the reason to resend them all.
- `raise_unless_delivered(result)`: `Output.write` semantics over a `send`
  result, for callers outside the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import orjson

from collector.log import RepeatLimiter, kv
from collector.send_result import Outcome, PermanentError, RetryableError, SendResult
from collector_plugins.outputs.encoding import encode_json, encode_text, json_default

Format = Literal["json", "raw"]
Encoder = Callable[[list[Any]], list[bytes]]

# Per-record error codes worth another try. PutRecords documents
# ProvisionedThroughputExceededException and InternalFailure; PutRecordBatch
# ServiceUnavailableException and InternalFailure. KMS throttling can appear on
# encrypted streams.
RETRYABLE_RECORD_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalFailureException",
        "ThrottlingException",
        "KMSThrottlingException",
        "KMS.ThrottlingException",
    }
)

# The per-record codes that mean "slow down": Kinesis ProvisionedThroughputExceededException; Firehose
# ServiceUnavailableException ("throughput limits for the Firehose stream may have been exceeded", PutRecordBatch
# API reference, checked 2026-12-06); KMS throttling on encrypted streams.
THROTTLING_RECORD_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ServiceUnavailableException",
        "ThrottlingException",
        "KMSThrottlingException",
        "KMS.ThrottlingException",
    }
)

_dumps = orjson.dumps
_NL = orjson.OPT_APPEND_NEWLINE


def _json_blobs(newline: bool) -> Encoder:
    option = _NL if newline else 0

    def lenient(record: Any) -> bytes:
        try:
            return _dumps(record, default=json_default, option=option)
        except (orjson.JSONEncodeError, TypeError):
            line = encode_json([record])  # its slow path never raises and always ends with "\n"
            return line if newline else line[:-1]

    def encode(records: list[Any]) -> list[bytes]:
        try:
            return [_dumps(r, default=json_default, option=option) for r in records]
        except (orjson.JSONEncodeError, TypeError):
            # Slow path for a batch holding at least one odd record.
            return [lenient(r) for r in records]

    return encode


def _raw_blobs(newline: bool) -> Encoder:
    end = b"\n" if newline else b""

    def one(record: Any) -> bytes:
        message = record.get("message") if isinstance(record, dict) else None
        if isinstance(message, bytes):
            return message + end
        if isinstance(message, str):
            return message.encode("utf-8", "replace") + end
        line = encode_text([record])  # a JSON line for a record without a message
        return line if newline else line[:-1]

    def encode(records: list[Any]) -> list[bytes]:
        return [one(r) for r in records]

    return encode


def blob_encoder(format: Format, newline: bool) -> Encoder:
    """The batch encoder for an output's `format` and `append_newline` options."""
    return _json_blobs(newline) if format == "json" else _raw_blobs(newline)


def pack_spans(sizes: Sequence[int], limit: int) -> list[tuple[int, int]]:
    """Consecutive `(start, end)` groups whose sizes sum to at most `limit` (a larger single blob stays alone)."""
    spans: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > limit:
            spans.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        spans.append((start, len(sizes)))
    return spans


def entry_outcomes(entries: Sequence[Mapping[str, Any]]) -> tuple[list[Outcome], list[str]]:
    """Outcome and reason per response entry: OK, RETRY (throttled, internal) or DROP (any other error code)."""
    outcomes: list[Outcome] = []
    reasons: list[str] = []
    for entry in entries:
        code = entry.get("ErrorCode")
        if not code:
            outcomes.append(Outcome.OK)
            reasons.append("")
            continue
        retryable = code in RETRYABLE_RECORD_ERRORS or "Throttl" in code
        outcomes.append(Outcome.RETRY if retryable else Outcome.DROP)
        message = entry.get("ErrorMessage")
        reasons.append(f"{code}: {message}" if message else str(code))
    return outcomes, reasons


def throttled_entries(entries: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any per-record answer is a throttling code (see THROTTLING_RECORD_ERRORS)."""
    for entry in entries:
        code = entry.get("ErrorCode")
        if code and (code in THROTTLING_RECORD_ERRORS or "Throttl" in code):
            return True
    return False


def spread(
    spans: Sequence[tuple[int, int]], outcomes: Sequence[Outcome], reasons: Sequence[str]
) -> tuple[list[Outcome], list[str]]:
    """Per-entry outcomes of packed entries, repeated for every event the entry carried."""
    out: list[Outcome] = []
    why: list[str] = []
    for (start, end), outcome, reason in zip(spans, outcomes, reasons, strict=True):
        out.extend([outcome] * (end - start))
        why.extend([reason] * (end - start))
    return out, why


def mismatched_answer(
    api: str, sent: int, answered: int, log: logging.Logger, limiter: RepeatLimiter, component: str
) -> str:
    """Log an answer of `answered` results to `sent` records; the reason to resend all (which failed is unknown)."""
    now, _, suppressed = limiter.check("malformed")
    if now:
        log.error(
            f"{api} answer does not match the request; resending the whole request",
            extra=kv(component=component, records=sent, results=answered, repeats_suppressed=suppressed),
        )
    return f"{api} answered {answered} results for {sent} records"


def raise_unless_delivered(result: SendResult) -> None:
    """`write()` semantics over a `send()` result: return if all was accepted, else raise."""
    if result.per_record is None:
        if result.outcome is Outcome.RETRY:
            raise RetryableError(result.reason, result.retry_after, result.throttled)
        if result.outcome is Outcome.DROP:
            raise PermanentError(result.reason)
        return
    reasons = result.record_reasons or [result.reason] * len(result.per_record)
    failed = [(o, r) for o, r in zip(result.per_record, reasons, strict=True) if o is not Outcome.OK]
    if not failed:
        return
    message = f"{len(failed)} of {len(result.per_record)} records not accepted: {failed[0][1]}"
    if any(o is Outcome.RETRY for o, _ in failed):
        raise RetryableError(message, result.retry_after, result.throttled)
    raise PermanentError(message)
