"""The one output driver: buffer, batching, concurrency, retries, dead letters.

Design note. Per output, data flows

    channel ──intake──▶ buffer (memory | disk) ──delivery──▶ Output.send
                                  send rate ──▶    │  (adaptive token bucket, once throttled)
                                      retries ◀────┤ RETRY / THROTTLED (backoff, full jitter, Retry-After)
                               dead-letter file ◀──┘ DROP (per record where the API says so)

- The **intake** task moves batches from the output's channel into its buffer.
  It belongs to the output's name, not to an instance, and is never restarted:
  a batch taken from the channel is always stored (or dropped and counted).
- The **delivery** loop is the supervised body of the output. It groups units
  from the buffer into requests no larger than the effective limits (the
  output's declared API limits, lowered by `batch:`), sends a request at the
  latest `batch.timeout` after its first record joined it, and keeps up to
  `concurrency` requests in flight. A unit is acknowledged to the buffer only
  when every record of it is resolved: delivered, or written to the
  dead-letter queue.
- Each request carries `origin`, the identity of its first record (its unit's
  `origin`, plus the record's index when a unit was split): the batch handed to
  `Output.send` keeps it across retries, and a replay of the same buffer data
  starts a request with the same origin, so outputs can name what they write
  idempotently. A request also keeps, per unit it holds, the span of records it
  took (`spans`); for an output declaring `record_origins` the driver names
  every record `"{unit origin}-{index in the unit}"` (`Batch.record_origins`),
  which does not depend on how units were grouped into requests, and keeps
  those names on the records it resends alone.
- Delivery can be cancelled at any point: units not acknowledged stay in the
  buffer, and the next delivery loop starts with `buffer.rewind()`. Requests
  that had in fact succeeded are then sent again (at-least-once).
- Retries: a request waits `uniform(0, min(max_backoff, initial_backoff *
  2^(n-1)))` before its n-th consecutive retry (full jitter), or the
  Retry-After the destination sent. The count restarts when a send delivered
  some records (partial progress never leaves a request at the cap) and when
  the failures change kind (an outage's backoff does not carry over into the
  throttling that follows it: a destination that says "slow down" is up).
- Throttling: every send of the output first takes a token from one shared
  `SendRate` (collector/send_rate.py), off until the destination first
  throttles, then cut on each THROTTLED answer and grown back on success (the
  AWS SDKs' adaptive mode). Outages (5xx, connection errors) only back off:
  the rate limit is for a destination that answers "slow down".
- While the collector shuts down, a delivery that has to wait for a retry gives
  up at once if the buffer is on disk (its data is safe there and is sent after
  the restart); a memory buffer keeps trying until the grace period ends.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from collector.api import Output, OutputConfig
from collector.buffer.base import Buffer, BufferClosedError, Unit
from collector.channel import Channel
from collector.dlq import DeadLetterQueue
from collector.events import Batch
from collector.log import RepeatLimiter, kv
from collector.output_limits import DEFAULT_MAX_BYTES, DEFAULT_MAX_EVENTS, Limit
from collector.send_rate import SendRate
from collector.send_result import Outcome, PermanentError, RetryableError, SendResult
from collector.stats import ComponentStats
from collector.tap import Tap


@dataclass(frozen=True)
class EffectiveLimits:
    max_events: int
    max_bytes: int
    max_record_bytes: int | None
    timeout: float
    exact_sizes: bool  # sizes from Output.record_size (API limits) rather than the batch estimate


def _limit(declared: Limit | None, own_default: int | None, fallback: int, configured: int | None) -> int:
    """A declared API limit caps the user's value; an output's own default (it has no API limit) does not."""
    if declared is not None:
        return declared.value if configured is None else min(declared.value, configured)
    if own_default is not None:
        return own_default if configured is None else configured
    return fallback if configured is None else min(fallback, configured)


def effective_limits(plugin: type[Output], config: OutputConfig) -> EffectiveLimits:
    limits = plugin.limits
    max_events = _limit(limits.max_events, plugin.default_max_events, DEFAULT_MAX_EVENTS, config.batch.max_events)
    max_bytes = _limit(limits.max_bytes, plugin.default_max_bytes, DEFAULT_MAX_BYTES, config.batch.max_bytes)
    timeout = config.batch.timeout if config.batch.timeout is not None else plugin.default_batch_timeout
    return EffectiveLimits(
        max_events,
        max_bytes,
        limits.max_record_bytes.value if limits.max_record_bytes else None,
        timeout,
        limits.max_bytes is not None or limits.max_record_bytes is not None,
    )


class _Abandoned(Exception):
    """Delivery gave up during shutdown; the records stay in the (disk) buffer."""


@dataclass
class _UnitState:
    unit: Unit
    parts: int = 0  # requests holding records of this unit and not resolved yet
    complete: bool = False  # every record of the unit has been placed in a request


@dataclass
class _Request:
    kind: str
    origin: str | None = None  # identity of the first record (see the design note)
    records: list[Any] = field(default_factory=list)
    nbytes: int = 0
    owners: list[_UnitState] = field(default_factory=list)
    # (unit origin, index in the unit of the first record, records): consecutive records of one unit.
    spans: list[list[Any]] = field(default_factory=list)

    def record_origins(self) -> list[str]:
        """One stable name per record: its unit's origin and its index in that unit."""
        return [f"{origin}-{i}" for origin, first, count in self.spans for i in range(first, first + count)]


class OutputRunner:
    """Everything that belongs to one output name and outlives its instances."""

    def __init__(
        self,
        name: str,
        channel: Channel,
        buffer: Buffer,
        dlq: DeadLetterQueue,
        stats: ComponentStats,
        log: logging.Logger,
        limiter: RepeatLimiter,
    ) -> None:
        self.name = name
        self.channel = channel
        self.buffer = buffer
        self.dlq = dlq
        self.stats = stats
        self.log = log
        self.limiter = limiter
        self.shutting_down = False
        self.send_rate = SendRate()  # outlives instances: a reload does not forget that the destination throttles
        self.abandoned = asyncio.Event()
        self.intake_task: asyncio.Task[None] | None = None
        self.taps: tuple[Tap, ...] = ()  # `collector tap` clients (collector/tap.py): what this output sends

    # -- intake ------------------------------------------------------------------------------------

    def start_intake(self) -> None:
        if self.intake_task is None:
            self.intake_task = asyncio.create_task(self._intake(), name=f"intake:{self.name}")

    async def _intake(self) -> None:
        channel, stats = self.channel, self.stats
        while True:
            batch = await channel.receive()
            if batch is None:
                if channel.closed:
                    break
                continue  # woken without data (interrupt): keep going
            stats.received(batch)
            while True:
                buffer = self.buffer
                try:
                    await buffer.push(batch)
                except BufferClosedError:
                    if self.buffer is buffer:
                        raise  # closed for good: a bug in the caller, surfaced
                    continue  # replaced by a reload while we waited: store it in the new one
                break
        self.buffer.close_intake()

    # -- delivery ----------------------------------------------------------------------------------

    async def deliver(self, output: Output, config: OutputConfig, stopping: asyncio.Event) -> None:
        """Run until the buffer is closed and drained, `stopping` is set, or a shutdown abandons delivery."""
        self.abandoned.clear()
        loop = asyncio.create_task(self._deliver(output, config), name=f"deliver:{self.name}")
        waiters = {asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(self.abandoned.wait())}
        try:
            await asyncio.wait({loop, *waiters}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            if not loop.done():
                # Unacknowledged units stay in the buffer; the next run starts with rewind().
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)
        if loop.done() and not loop.cancelled():
            loop.result()  # a bug in the driver surfaces to the supervisor

    async def _deliver(self, output: Output, config: OutputConfig) -> None:
        limits = effective_limits(type(output), config)
        self.send_rate.window = config.concurrency
        self.buffer.rewind()
        slots = asyncio.Semaphore(config.concurrency)
        in_flight: set[asyncio.Task[None]] = set()
        feeder = _UnitFeeder(self.buffer)
        batcher = _Batcher(limits, output, self.buffer.ack, self._dead_letter)
        loop = asyncio.get_running_loop()
        try:
            while True:
                # Wait for ever for a first unit; then until the open request is `timeout` old.
                wait = None if batcher.open is None else max(0.0, batcher.opened_at + limits.timeout - loop.time())
                unit = await feeder.next(wait)
                if isinstance(unit, Unit):
                    for full in batcher.add(unit):
                        await self._submit(full, output, config, slots, in_flight)
                    if limits.timeout > 0 or await feeder.ready():
                        continue
                # Timed out, nothing more ready right now, or the buffer is drained: send.
                request = batcher.take()
                if request is not None:
                    await self._submit(request, output, config, slots, in_flight)
                if unit is None:
                    break
            if in_flight:
                await asyncio.gather(*in_flight)
        finally:
            feeder.cancel()
            for task in in_flight:
                task.cancel()

    async def _submit(
        self,
        request: _Request,
        output: Output,
        config: OutputConfig,
        slots: asyncio.Semaphore,
        in_flight: set[asyncio.Task[None]],
    ) -> None:
        if config.concurrency == 1:
            await self._run_request(request, output, config)
            return
        await slots.acquire()
        task = asyncio.create_task(self._run_request(request, output, config))
        in_flight.add(task)

        def done(t: asyncio.Task[None]) -> None:
            in_flight.discard(t)
            slots.release()

        task.add_done_callback(done)

    async def _run_request(self, request: _Request, output: Output, config: OutputConfig) -> None:
        if self.taps:
            tapped = Batch(request.kind, request.records)  # type: ignore[arg-type]
            for tap in self.taps:
                tap.offer(self.name, "outputs", tapped)
        try:
            origins = request.record_origins() if type(output).record_origins else None
            delivered, dead = await self.send_with_retries(
                output, config, request.kind, request.records, request.origin, origins
            )
        except _Abandoned:
            self.abandoned.set()
            return
        if delivered:
            self.stats.sent_events += delivered
            self.stats.sent_bytes += request.nbytes * delivered // max(1, len(request.records))
        if dead:
            self._dead_letter(request.kind, [r for r, _ in dead], [reason for _, reason in dead])
        for state in request.owners:
            state.parts -= 1
            if state.parts == 0 and state.complete:
                self.buffer.ack(state.unit)

    async def send_with_retries(
        self,
        output: Output,
        config: OutputConfig,
        kind: str,
        records: list[Any],
        origin: str | None = None,
        record_origins: list[str] | None = None,
    ) -> tuple[int, list[tuple[Any, str]]]:
        """Send until every record is delivered or rejected for good: (delivered, [(record, reason)]).

        `origin` goes with the batch while it holds all of `records`; a resent subset has none.
        `record_origins` (one per record) go with their records, on a resent subset too.
        """
        retry = config.retry
        attempt = 0  # retries of this request, against max_retries
        step = 0  # consecutive retries without progress, of one kind: the backoff's exponent
        throttling = False  # the kind of the last failure: throttled, or an outage (5xx, connection)
        delivered = 0
        dead: list[tuple[Any, str]] = []
        todo = records
        todo_origins = record_origins
        while todo:
            batch = Batch(kind, todo)  # type: ignore[arg-type]
            if todo is records:
                batch.origin = origin
            batch.record_origins = todo_origins
            sent = await self.send_rate.acquire()
            try:
                result = await output.send(batch) or SendResult.ok()
            except RetryableError as exc:
                result = SendResult(Outcome.RETRY, exc.reason, exc.retry_after, throttled=exc.throttled)
            except PermanentError as exc:
                result = SendResult.drop(exc.reason)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                result = output.classify(exc)
                self._log_send_error(exc)
            self.send_rate.record(result.throttled, sent)
            if result.per_record is None:
                if result.outcome is Outcome.OK:
                    delivered += len(todo)
                    return delivered, dead
                if result.outcome is Outcome.DROP:
                    dead.extend((r, result.reason) for r in todo)
                    return delivered, dead
                retry_reason = result.reason
            else:
                again: list[Any] = []
                again_origins: list[str] | None = None if todo_origins is None else []
                reasons = result.record_reasons or [result.reason] * len(todo)
                for i, (record, outcome, reason) in enumerate(zip(todo, result.per_record, reasons, strict=True)):
                    if outcome is Outcome.OK:
                        delivered += 1
                    elif outcome is Outcome.DROP:
                        dead.append((record, reason))
                    else:
                        again.append(record)
                        if again_origins is not None and todo_origins is not None:
                            again_origins.append(todo_origins[i])
                if not again:
                    return delivered, dead
                if len(again) < len(todo):
                    step = 0  # progress: the destination takes data, so the backoff starts over
                first = next(r for r, o in zip(reasons, result.per_record, strict=True) if o is Outcome.RETRY)
                retry_reason = f"{len(again)} of {len(todo)} records: {first}"
                todo, todo_origins = again, again_origins
            if result.throttled != throttling:
                # From an outage to "slow down" (the destination is back) or the other way: a new episode.
                step, throttling = 0, result.throttled
            attempt += 1
            step += 1
            self.stats.retries += 1
            if retry.max_retries is not None and attempt > retry.max_retries:
                dead.extend((r, f"retries_exhausted: {retry_reason}") for r in todo)
                return delivered, dead
            if self.shutting_down and self.buffer.kind == "disk":
                raise _Abandoned
            cap = min(retry.max_backoff, retry.initial_backoff * (2 ** min(step - 1, 62)))
            delay = result.retry_after if result.retry_after is not None else random.uniform(0, cap)
            self._log_retry(retry_reason, attempt, delay, len(todo), result.throttled)
            await asyncio.sleep(delay)
        return delivered, dead

    def _dead_letter(self, kind: str, records: list[Any], reasons: list[str]) -> None:
        try:
            overflow = self.dlq.write(kind, records, reasons)
        except OSError as exc:
            self.stats.drop("dead_letter_failed", len(records))
            self._log_error_limited(
                "dead_letter_failed",
                "cannot write dead letters; the rejected records are lost",
                events=len(records),
                error=str(exc),
            )
            return
        if len(records) - overflow:
            self.stats.drop("dead_lettered", len(records) - overflow)
        if overflow:
            self.stats.drop("dead_letter_full", overflow)
        self._log_error_limited(
            "dead_letter", "destination rejected records; kept as dead letters", events=len(records), reason=reasons[0]
        )

    def _log_error_limited(self, cause: str, message: str, **fields: Any) -> None:
        now, _, suppressed = self.limiter.check(self.name, cause)
        if not now:
            return
        if suppressed:
            fields["repeats_suppressed"] = suppressed
        self.log.error(message, extra={"fields": {"component": self.name, **fields}})

    def _log_retry(self, reason: str, attempt: int, delay: float, events: int, throttled: bool) -> None:
        now, _, suppressed = self.limiter.check(self.name, "retry")
        if not now:
            return
        fields: dict[str, Any] = {
            "component": self.name,
            "reason": reason,
            "attempt": attempt,
            "retry_in": round(delay, 3),
            "events": events,
        }
        if throttled:
            fields["throttled"] = True
        if self.send_rate.enabled:
            fields["send_rate"] = round(self.send_rate.rate, 2)  # requests/s the output is held to
        if suppressed:
            fields["repeats_suppressed"] = suppressed
        self.log.warning("request failed; retrying", extra={"fields": fields})

    def _log_send_error(self, exc: Exception) -> None:
        now, first, _ = self.limiter.check(self.name, "send_error", type(exc).__name__)
        if now:
            self.log.error(
                "output raised an unexpected error",
                exc_info=exc if first else None,
                extra=kv(component=self.name, error=f"{type(exc).__name__}: {exc}"),
            )


_TIMEOUT: Any = object()


class _UnitFeeder:
    """`buffer.pop()` with a timeout, without losing a unit to the timeout."""

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self._pop: asyncio.Task[Unit | None] | None = None

    def _pending(self) -> asyncio.Task[Unit | None]:
        if self._pop is None:
            self._pop = asyncio.ensure_future(self.buffer.pop())
        return self._pop

    async def ready(self) -> bool:
        """Whether another unit is available without waiting (gives the pop one loop turn)."""
        pop = self._pending()
        if not pop.done():
            await asyncio.sleep(0)
        return pop.done()

    async def next(self, timeout: float | None) -> Unit | Any | None:
        """A unit; None once the buffer is drained and closed; or `_TIMEOUT`."""
        pop = self._pending()
        if not pop.done():
            await asyncio.wait({pop}, timeout=timeout)
        if pop.done():
            self._pop = None
            return pop.result()
        return _TIMEOUT

    def cancel(self) -> None:
        if self._pop is not None and not self._pop.done():
            self._pop.cancel()


class _Batcher:
    """Cuts units into requests within the limits; tracks which units each request holds."""

    def __init__(self, limits: EffectiveLimits, output: Output, ack: Any, dead_letter: Any) -> None:
        self.limits = limits
        self.output = output
        self.ack = ack
        self.dead_letter = dead_letter
        self.open: _Request | None = None
        self.opened_at = 0.0  # loop time when the open request got its first record

    def take(self) -> _Request | None:
        request, self.open = self.open, None
        return request

    def _new_request(self, unit: Unit, index: int) -> _Request:
        """A request starting at record `index` of `unit`; it becomes the open one, whose age counts from now."""
        self.opened_at = asyncio.get_running_loop().time()
        return _Request(unit.batch.kind, unit.origin if index == 0 else f"{unit.origin}-{index}")

    def add(self, unit: Unit) -> list[_Request]:
        """Place `unit`'s records; returns the requests that became full."""
        batch, limits = unit.batch, self.limits
        records = batch.records
        full: list[_Request] = []
        if self.open is not None and self.open.kind != batch.kind:
            full.append(self.open)
            self.open = None
        if not records:
            self.ack(unit)
            return full
        state = _UnitState(unit)
        whole = len(records) <= limits.max_events and batch.nbytes <= limits.max_bytes
        if not limits.exact_sizes and whole:
            if self.open is not None and not self._fits_whole(self.open, batch):
                full.append(self.open)
                self.open = None
            whole_request = self.open or self._new_request(unit, 0)
            whole_request.records.extend(records)
            whole_request.nbytes += batch.nbytes
            whole_request.owners.append(state)
            whole_request.spans.append([unit.origin, 0, len(records)])
            state.parts, state.complete = 1, True
            self.open = whole_request
            return full
        if not limits.exact_sizes:
            full.extend(self._cut_evenly(unit, state))
            return full
        sizes = [self.output.record_size(r) for r in records]
        oversized: list[Any] = []
        request: _Request | None = self.open
        span: list[Any] | None = None  # the open request's span of this unit's records, while consecutive
        for index, (record, size) in enumerate(zip(records, sizes, strict=True)):
            if limits.max_record_bytes is not None and size > limits.max_record_bytes:
                oversized.append(record)
                span = None
                continue
            if request is not None and (
                len(request.records) >= limits.max_events or request.nbytes + size > limits.max_bytes
            ):
                full.append(request)
                request = None
            if request is None:
                request = self._new_request(unit, index)
                span = None
            if not request.owners or request.owners[-1] is not state:
                request.owners.append(state)
                state.parts += 1
            if span is None:
                span = [unit.origin, index, 0]
                request.spans.append(span)
            span[2] += 1
            request.records.append(record)
            request.nbytes += size
        self.open = request
        if oversized:
            self.dead_letter(batch.kind, oversized, ["record_too_large"] * len(oversized))
        state.complete = True
        if state.parts == 0:
            self.ack(unit)
        return full

    def _cut_evenly(self, unit: Unit, state: _UnitState) -> list[_Request]:
        """Place a unit whose records all count `nbytes // len(records)` (sizes are estimates): the same
        requests as placing them one by one, cut by arithmetic on slices instead of a per-record loop."""
        records, limits = unit.batch.records, self.limits
        count = len(records)
        per = unit.batch.nbytes // count
        full: list[_Request] = []
        request = self.open
        index = 0
        while index < count:
            if request is not None:
                room = limits.max_events - len(request.records)
                if per:
                    room = min(room, (limits.max_bytes - request.nbytes) // per)
                elif request.nbytes > limits.max_bytes:  # holds one record over the limit: nothing joins it
                    room = 0
                if room <= 0:
                    full.append(request)
                    request = None
            if request is None:
                request = self._new_request(unit, index)
                room = min(limits.max_events, limits.max_bytes // per) if per else limits.max_events
                room = max(room, 1)  # a record over max_bytes still goes, alone in its request
            take = min(room, count - index)
            request.records.extend(records[index : index + take] if take < count else records)
            request.nbytes += take * per
            request.spans.append([unit.origin, index, take])  # one slice per request: a span of its own
            if not request.owners or request.owners[-1] is not state:
                request.owners.append(state)
                state.parts += 1
            index += take
        self.open = request
        state.complete = True
        return full

    def _fits_whole(self, request: _Request, batch: Batch) -> bool:
        limits = self.limits
        return (
            len(request.records) + len(batch.records) <= limits.max_events
            and request.nbytes + batch.nbytes <= limits.max_bytes
        )
