"""What both transports do with one export request: admit, convert, hand on, wait until it is safe, answer.

Design note. The gRPC and HTTP servers only decode and encode; `Receiver.export` decides the answer:

1. **Admission** (`admit`, before the body is read where the transport allows): at most
   `max_concurrent_requests` requests at once and `max_in_flight_bytes` of bodies being decoded, converted
   and handed on. Over either, or while the collector stops, the answer is retryable at once (gRPC
   UNAVAILABLE with RetryInfo, HTTP 503 with Retry-After): the client keeps the data and tries later.
2. **Conversion** (plugins/common/otlp): invalid items (a span without a valid trace id, a NaN point) are
   left out and counted; the answer then carries a `partial_success` with their number and the first reason,
   exactly as the OTLP spec defines it, and the client does not retry them.
3. **Hand-on** with an acknowledgement token (collector/acks.py), as the `forward` input does: the batch goes
   downstream with `ctx.emit`. If the pipeline does not take it within `backpressure_timeout` (a full
   buffer with `when_full: block` stops its channel), the emit is abandoned and the answer is retryable:
   HTTP 429 would say "you send too fast", but a full pipeline is the server's state, so 503 (and gRPC
   UNAVAILABLE), both with a retry delay, as the spec's throttling section describes.
4. **Durability**: the answer "OK" is sent only once the token is complete, i.e. the batch is durable in every
   disk buffer it went to and delivered by every output with a memory buffer. If that takes longer than
   `ack_timeout`, the answer is retryable instead: the client sends the data again (it may then be
   delivered twice: at-least-once), but it is never told "OK" for data that could still be lost.

A request abandoned at step 3 or 4 may still be delivered by the consumers that took it; the client resends
it, so it may arrive twice. Never retryable: a body that does not decode (400 / INVALID_ARGUMENT) or is too
large (413 / RESOURCE_EXHAUSTED without RetryInfo, which OTLP clients do not retry).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collector.acks import AckTracker
from collector.api import InputContext
from collector.events import LOGS, METRICS, TRACES, Batch
from collector_plugins.common.otlp.conversion import Conversion
from collector_plugins.common.otlp.logs import logs_from_request
from collector_plugins.common.otlp.traces import spans_from_request

if TYPE_CHECKING:
    from collector_plugins.inputs.otlp.input import Otlp

OK = "ok"
RETRY = "retry"
INTERNAL = "internal"

# Per signal: the loss-ledger reason for an invalid item and the counter of items received.
ITEMS = {TRACES: "spans", LOGS: "log_records", METRICS: "metric_points"}


@dataclass(slots=True)
class Answer:
    """The outcome of one export: OK (maybe partial), retry later, or an internal error (not retryable)."""

    status: str
    rejected: int = 0
    message: str = ""
    retry_after: float = 0.0


class Receiver:
    """Turns decoded export requests of the three signals into batches and answers (one per `Otlp` input)."""

    def __init__(self, owner: Otlp, ctx: InputContext) -> None:
        self.owner = owner
        self.ctx = ctx
        config = owner.config
        self.max_requests = config.max_concurrent_requests
        self.max_bytes = config.max_in_flight_bytes
        self.backpressure_timeout = config.backpressure_timeout
        self.ack_timeout = config.ack_timeout
        self.retry_after = config.retry_after
        self.active = 0
        self.in_flight_bytes = 0
        self.stopping = False
        self.idle = asyncio.Event()
        self.idle.set()
        self._convert = {
            TRACES: self._traces,
            LOGS: self._logs,
            METRICS: self._metrics,
        }

    # -- admission -------------------------------------------------------------------------------------------

    def admit(self, nbytes: int) -> Answer | None:
        """Take a request slot and `nbytes` of the in-flight budget; an Answer (retry) when refused."""
        owner = self.owner
        if self.stopping:
            owner.refused_stopping += 1
            return Answer(RETRY, message="the collector is shutting down", retry_after=self.retry_after)
        if self.active >= self.max_requests or (
            self.in_flight_bytes and self.in_flight_bytes + nbytes > self.max_bytes
        ):
            owner.refused_busy += 1
            owner.warn("busy", "requests refused (retryable): max_concurrent_requests or max_in_flight_bytes reached")
            return Answer(RETRY, message="too many requests in flight, retry later", retry_after=self.retry_after)
        self.active += 1
        self.in_flight_bytes += nbytes
        self.idle.clear()
        return None

    def release_bytes(self, nbytes: int) -> None:
        self.in_flight_bytes -= nbytes

    def done(self) -> None:
        """Give the request slot back (exactly once per admitted request, after its answer is decided)."""
        self.active -= 1
        if not self.active:
            self.idle.set()

    # -- one request -----------------------------------------------------------------------------------------

    async def export(self, kind: str, request: Any, nbytes: int) -> Answer:
        """Convert, hand on and wait for durability; `nbytes` is the request's decoded size (batch bytes).

        The caller has admitted the request and releases its bytes and slot afterwards.
        """
        owner = self.owner
        try:
            conversion = self._convert[kind](request)
        except Exception as exc:  # a bug of ours, not the client's data: answered as internal, not retried
            owner.internal_errors += 1
            owner.warn("internal", "an export request could not be converted", signal=kind, error=repr(exc))
            return Answer(INTERNAL, message=f"internal error converting the request: {type(exc).__name__}")
        del request
        records = conversion.records
        owner.count(kind, len(records), conversion.rejected)
        if conversion.rejected:
            owner.warn(f"rejected_{kind}", "invalid items left out", signal=kind, reason=conversion.error_message)
        answer = Answer(OK, conversion.rejected, conversion.error_message)
        if not records:
            return answer
        loop = asyncio.get_running_loop()
        safe = loop.create_future()

        def committed(position: Any) -> None:
            if not safe.done():
                safe.set_result(None)

        token = AckTracker(committed).token(1)
        batch = Batch(kind, records, nbytes, ack=token)  # type: ignore[arg-type]
        del records, conversion
        try:
            async with asyncio.timeout(self.backpressure_timeout):
                await self.ctx.emit(batch)
        except TimeoutError:
            owner.refused_backpressure += 1
            owner.warn("backpressure", "the pipeline did not take a request in time; answered retryable")
            return Answer(RETRY, message="the collector's pipeline is full, retry later", retry_after=self.retry_after)
        del batch
        if not safe.done():
            try:
                async with asyncio.timeout(self.ack_timeout):
                    await safe
            except TimeoutError:
                owner.ack_timeouts += 1
                owner.warn("ack_timeout", "a request was not durable within ack_timeout; answered retryable")
                return Answer(RETRY, message="the data is not yet durable, send it again", retry_after=self.retry_after)
        return answer

    def _traces(self, request: Any) -> Conversion:
        conversion = spans_from_request(request)
        if conversion.rejected:
            self.ctx.loss("invalid_span", conversion.rejected)
        return conversion

    def _logs(self, request: Any) -> Conversion:
        return logs_from_request(request, time.time())

    def _metrics(self, request: Any) -> Conversion:
        converter = self.owner.metrics_converter()
        conversion = converter.convert(request, time.time())
        for reason, points in converter.drain_losses().items():
            self.ctx.loss(reason, points)
        return conversion
