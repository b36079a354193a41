"""A bounded in-memory buffer (events and bytes); lost on a crash, never silently.

Input acknowledgements are released only when a unit is acknowledged
(delivered, dead-lettered or dropped), so an input with checkpoints re-reads
what a crash took from this buffer. On `close()`, whatever was never
acknowledged is reported through `on_drop("shutdown_timeout", n)`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from collector.acks import release
from collector.buffer.base import Buffer, BufferClosedError, BufferCondition, DropCallback, Unit
from collector.buffer.intake import IntakeCondition
from collector.events import Batch


class MemoryBuffer(Buffer):
    kind = "memory"

    def __init__(self, *, max_events: int, max_bytes: int, when_full: str, on_drop: DropCallback) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.on_drop = on_drop
        self._queue: deque[tuple[Unit, float]] = deque()  # waiting to be popped, with arrival time
        self._in_flight: dict[int, tuple[Unit, float]] = {}  # popped, not yet acked
        self._events = 0  # stored and not acked (queued + in flight)
        self._bytes = 0
        self._next_id = 0
        self._intake_closed = False
        self._closed = False
        self._readable = asyncio.Event()
        self._space = asyncio.Event()
        self._intake = IntakeCondition(when_full)

    async def open(self) -> None:
        return None

    def _fits(self, batch: Batch) -> bool:
        if not self._events:
            return True  # an empty buffer takes any single batch, so none is stuck for ever
        return self._events + len(batch.records) <= self.max_events and self._bytes + batch.nbytes <= self.max_bytes

    async def push(self, batch: Batch) -> bool:
        if self._closed or self._intake_closed:
            raise BufferClosedError("memory buffer is closed")
        while not self._fits(batch):
            self._intake.full()
            if self.when_full == "drop_newest":
                self.on_drop("buffer_full", len(batch.records))
                release(batch.ack)
                return False
            self._space.clear()
            await self._space.wait()
            if self._closed:
                raise BufferClosedError("memory buffer closed while waiting for room")
        self._intake.stored()
        now = time.time()
        # Memory units never outlive the process; the push time keeps origins of different runs apart.
        unit = Unit(self._next_id, batch, f"{int(now * 1000):011x}-m-{self._next_id:x}")
        self._next_id += 1
        self._queue.append((unit, now))
        self._events += len(batch.records)
        self._bytes += batch.nbytes
        self._readable.set()
        return True

    async def pop(self) -> Unit | None:
        while not self._queue:
            if self._intake_closed:
                return None
            self._readable.clear()
            await self._readable.wait()
        entry = self._queue.popleft()
        self._in_flight[entry[0].id] = entry
        return entry[0]

    def ack(self, unit: Unit) -> None:
        entry = self._in_flight.pop(unit.id, None)
        if entry is None:
            return
        self._events -= len(unit.batch.records)
        self._bytes -= unit.batch.nbytes
        release(unit.batch.ack)
        self._space.set()

    def rewind(self) -> None:
        if not self._in_flight:
            return
        # In-flight units go back to the front, in their original order.
        for unit_id in sorted(self._in_flight, reverse=True):
            self._queue.appendleft(self._in_flight.pop(unit_id))
        self._readable.set()

    def close_intake(self) -> None:
        self._intake_closed = True
        self._readable.set()

    async def close(self) -> None:
        self._closed = True
        self.rewind()
        lost = sum(len(unit.batch.records) for unit, _ in self._queue)
        if lost:
            self.on_drop("shutdown_timeout", lost)
        self._queue.clear()
        self._events = self._bytes = 0
        self._space.set()

    @property
    def pending_events(self) -> int:
        return self._events

    def condition(self) -> BufferCondition:
        return self._intake.condition(self._events)

    def metrics(self) -> dict[str, float]:
        oldest = [t for _, t in self._in_flight.values()]
        if self._queue:
            oldest.append(self._queue[0][1])
        return {
            "events": self._events,
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "max_events": self.max_events,
            "oldest_age_seconds": time.time() - min(oldest) if oldest else 0.0,
        }
