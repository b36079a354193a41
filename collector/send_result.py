"""What an output tells the driver after each send: `SendResult`, or a retryable or permanent error.

An output only says how to send one batch and how to read the answer. It
returns (or raises) one of:

- `None` / `SendResult.ok()`: every record was accepted;
- `SendResult.retry(reason, retry_after)` or `RetryableError`: nothing was
  accepted, try the whole batch again later (5xx, timeouts, connection errors);
- `SendResult.throttle(reason, retry_after)` or `RetryableError(...,
  throttled=True)`: a RETRY because the destination asked us to slow down; the
  driver also lowers the output's send rate (`collector/send_rate.py`);
- `SendResult.drop(reason)` or `PermanentError`: the records can never be
  accepted (validation, access denied): they go to the dead-letter queue;
- `SendResult.partial(outcomes)`: one `Outcome` per record, in order (APIs that
  report per record: Kinesis PutRecords, Firehose PutRecordBatch, OpenSearch
  `_bulk`); the driver resends only the records marked RETRY. `throttled=True`
  says that (some of) those retries were throttling.
Any other exception goes through `Output.classify(exc)` (retryable by default).

The limits an output declares are in `collector/output_limits.py`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Outcome(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome = Outcome.OK
    reason: str = ""
    retry_after: float | None = None
    per_record: Sequence[Outcome] | None = None
    # Optional per-record reasons for DROP/RETRY outcomes (same length as per_record).
    record_reasons: Sequence[str] | None = None
    # A RETRY (whole or per record) because the destination throttled: the driver slows the send rate.
    throttled: bool = False

    @staticmethod
    def ok() -> SendResult:
        return _OK

    @staticmethod
    def retry(reason: str, retry_after: float | None = None) -> SendResult:
        return SendResult(Outcome.RETRY, reason, retry_after)

    @staticmethod
    def throttle(reason: str, retry_after: float | None = None) -> SendResult:
        """THROTTLED: a RETRY of the whole batch that also lowers the output's send rate."""
        return SendResult(Outcome.RETRY, reason, retry_after, throttled=True)

    @staticmethod
    def drop(reason: str) -> SendResult:
        return SendResult(Outcome.DROP, reason)

    @staticmethod
    def partial(
        outcomes: Sequence[Outcome],
        reasons: Sequence[str] | None = None,
        retry_after: float | None = None,
        throttled: bool = False,
    ) -> SendResult:
        return SendResult(Outcome.OK, "partial", retry_after, outcomes, reasons, throttled)


_OK = SendResult()


class RetryableError(Exception):
    """Raised by an output: the batch may succeed later."""

    def __init__(self, reason: str, retry_after: float | None = None, throttled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.throttled = throttled  # the destination asked us to slow down (see SendResult.throttle)


class PermanentError(Exception):
    """Raised by an output: the batch can never be accepted as it is."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
