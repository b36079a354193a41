"""Telemetry records about the `xray` output itself (PutTelemetryRecords), as the X-Ray daemon sends them.

The daemon reports, per minute, how many segments it received, sent, had
rejected (UnprocessedTraceSegments) and spilled over (dropped for lack of
room), and its connection errors to X-Ray by kind. The X-Ray console shows
them per host. This module keeps the same counters for one output:

- `received`: records taken into the output's buffer (its own intake counter),
- `sent` / `rejected`: counted by the output from PutTraceSegments answers,
- `spillover`: records the output's buffer or dead-letter queue had no room for,
- connection errors: classified from the exceptions of failed calls.

Every `interval` the counts since the last cut become one record; records that
could not be sent are kept (at most 30, the oldest dropped first, like the
daemon) and sent with the next ones, 10 per call. Nothing is sent before the
first segment arrives. The host name and instance id come from `AWS_HOSTNAME` /
`AWS_INSTANCE_ID` or the collector's host facts; instance metadata is never
queried here.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import logging
import os
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from collector.log import RepeatLimiter, kv

KEEP_RECORDS = 30
RECORDS_PER_CALL = 10
SPILLOVER_REASONS = frozenset({"buffer_full", "dead_letter_full", "dead_letter_failed"})

_ERROR_FIELDS = (
    "TimeoutCount",
    "ConnectionRefusedCount",
    "HTTPCode4XXCount",
    "HTTPCode5XXCount",
    "UnknownHostCount",
    "OtherCount",
)


def connection_error_kind(exc: BaseException) -> str:
    """Which BackendConnectionErrors counter a failed PutTraceSegments call belongs to."""
    if isinstance(exc, ClientError):
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if 500 <= status < 600:
            return "HTTPCode5XXCount"
        if 400 <= status < 500:
            return "HTTPCode4XXCount"
        return "OtherCount"
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError | TimeoutError):
        return "TimeoutCount"
    cause: BaseException | None = exc
    seen = 0
    while cause is not None and seen < 8:  # the OSError behind botocore's and aiohttp's wrappers
        if isinstance(cause, socket.gaierror):
            return "UnknownHostCount"
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return "ConnectionRefusedCount"
        nested = getattr(cause, "kwargs", {}).get("error") if isinstance(cause, EndpointConnectionError) else None
        cause = nested or cause.__cause__ or getattr(cause, "os_error", None)
        seen += 1
    return "OtherCount"


class Telemetry:
    """The counters of one output and the loop that publishes them."""

    def __init__(
        self,
        *,
        output: str,
        log: logging.Logger,
        interval: float,
        host: str,
        instance_id: str | None,
        resource_arn: str | None,
        own_stats: Callable[[], Any | None],
    ) -> None:
        self.output = output
        self.log = log
        self.interval = interval
        self.hostname = os.environ.get("AWS_HOSTNAME") or host
        self.instance_id = os.environ.get("AWS_INSTANCE_ID") or instance_id or ""
        self.resource_arn = resource_arn or ""
        self._own_stats = own_stats
        self.sent = 0
        self.rejected = 0
        self.errors = dict.fromkeys(_ERROR_FIELDS, 0)
        self.records_published = 0
        self._queue: deque[dict[str, Any]] = deque(maxlen=KEEP_RECORDS)
        self._cut_sent = 0
        self._cut_rejected = 0
        self._cut_received = 0
        self._cut_spillover = 0
        self._cut_errors = dict(self.errors)
        self._seen_segments = False
        self._limiter = RepeatLimiter(interval=300.0)
        self._task: asyncio.Task[None] | None = None

    # -- counting (called by the output on every answer) ----------------------------------------------

    def connection_error(self, exc: BaseException) -> None:
        self.errors[connection_error_kind(exc)] += 1

    def _intake(self) -> tuple[int, int]:
        """(received, spillover) so far, from the output's own counters when the runtime provides them."""
        stats = self._own_stats()
        if stats is None:
            return self.sent + self.rejected, 0
        spill = sum(n for reason, n in stats.dropped.items() if reason in SPILLOVER_REASONS)
        return int(stats.received_events), int(spill)

    def cut(self, now: datetime.datetime | None = None) -> dict[str, Any] | None:
        """The record for the period since the last cut (queued for sending), or None before any segment."""
        received, spillover = self._intake()
        record = {
            "Timestamp": now or datetime.datetime.now(datetime.UTC),
            "SegmentsReceivedCount": received - self._cut_received,
            "SegmentsSentCount": self.sent - self._cut_sent,
            "SegmentsSpilloverCount": spillover - self._cut_spillover,
            "SegmentsRejectedCount": self.rejected - self._cut_rejected,
            "BackendConnectionErrors": {k: self.errors[k] - self._cut_errors[k] for k in _ERROR_FIELDS},
        }
        self._cut_received, self._cut_spillover = received, spillover
        self._cut_sent, self._cut_rejected = self.sent, self.rejected
        self._cut_errors = dict(self.errors)
        if received or self.sent:
            self._seen_segments = True
        if not self._seen_segments:
            return None
        self._queue.append(record)
        return record

    async def publish(self, put: Callable[..., Awaitable[Any]]) -> None:
        """Send every queued record, 10 per call; what fails stays queued for the next round."""
        while self._queue:
            chunk = [self._queue[i] for i in range(min(RECORDS_PER_CALL, len(self._queue)))]
            params: dict[str, Any] = {"TelemetryRecords": chunk, "Hostname": self.hostname}
            if self.instance_id:
                params["EC2InstanceId"] = self.instance_id
            if self.resource_arn:
                params["ResourceARN"] = self.resource_arn
            try:
                await put(**params)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connection_error(exc)
                now, _, suppressed = self._limiter.check("telemetry")
                if now:
                    self.log.warning(
                        "could not publish X-Ray telemetry records; keeping them for the next try",
                        extra=kv(
                            component=self.output,
                            records=len(self._queue),
                            error=f"{type(exc).__name__}: {exc}",
                            repeats_suppressed=suppressed,
                        ),
                    )
                return
            for _ in chunk:
                self._queue.popleft()
            self.records_published += len(chunk)

    # -- the periodic loop ------------------------------------------------------------------------------

    def start(self, put: Callable[..., Awaitable[Any]]) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(self.interval)
                self.cut()
                await self.publish(put)

        self._task = asyncio.create_task(loop(), name=f"xray-telemetry:{self.output}")

    async def stop(self, put: Callable[..., Awaitable[Any]] | None, timeout: float = 2.0) -> None:
        """Stop the loop; publish the last period within `timeout` (best effort, as the daemon does on exit)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if put is not None:
            self.cut()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.publish(put), timeout)
