"""The buffer interface between an output's intake and its delivery loop.

Contract (both implementations):
- `push(batch)` stores a batch. When the buffer is full it waits (`when_full:
  block`) or drops the batch (`drop_newest`), reporting the loss through
  `on_drop(reason, events)` and releasing the batch's ack token; returns False
  then. A memory buffer keeps the ack token with the batch and releases it when
  the unit is acknowledged; a disk buffer releases it once the batch is durable.
- `pop()` returns the next `Unit` in order (waiting while empty); None once the
  buffer is closed for intake and everything has been handed out.
- `ack(unit)` marks a unit done for good: delivered, dead-lettered, or dropped
  (the caller has counted the loss). Units may be acked in any order; the
  buffer frees space for the longest acknowledged prefix.
- `rewind()` makes every popped-but-unacked unit come out of `pop()` again, in
  the original order (the delivery loop restarted and lost track of them).
- `close_intake()` ends intake: `pop()` returns None once drained.
- `close()` makes the state durable and releases resources. Units not acked by
  then are delivered again by the next `open()` (disk) or are lost (memory: the
  caller counts them).
- `condition()` says whether a `push` would store data now, and if not why and
  since when: `full` (waiting for room, or dropping with `drop_newest`) or
  `write_failing` (a disk buffer whose disk refuses writes). /readyz, /healthz,
  /status and `collector top` read it (see `intake.IntakeCondition`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from collector.events import Batch

DropCallback = Callable[[str, int], None]


class BufferClosedError(RuntimeError):
    """`push` on a buffer whose intake is closed, or that was closed while the push waited for room."""


@dataclass(frozen=True, slots=True)
class BufferCondition:
    """Whether a buffer accepts data now; if not, why (`full`, `write_failing`) and since when."""

    accepting: bool
    reason: str = ""
    since: float | None = None  # time.monotonic() when it stopped accepting
    error: str | None = None  # the last error the disk gave (write_failing)
    pending_events: int = 0  # stored and not acknowledged by the output

    def blocked_seconds(self, now: float | None = None) -> float:
        if self.since is None:
            return 0.0
        return max(0.0, (time.monotonic() if now is None else now) - self.since)


@dataclass(slots=True)
class Unit:
    """One batch as stored in a buffer; `id` increases in delivery order.

    `origin` names the stored data: the same every time the unit is handed out
    again (after a rewind, and for a disk buffer after a restart), and not
    reused by other data, in this run or another (it includes the time the
    data was stored). Outputs derive idempotent names from it.
    """

    id: int
    batch: Batch
    origin: str = ""


class Buffer(ABC):
    kind: str

    @abstractmethod
    async def open(self) -> None:
        """Prepare for use (a disk buffer recovers what a previous run left)."""

    @abstractmethod
    async def push(self, batch: Batch) -> bool: ...

    @abstractmethod
    async def pop(self) -> Unit | None: ...

    @abstractmethod
    def ack(self, unit: Unit) -> None: ...

    @abstractmethod
    def rewind(self) -> None: ...

    @abstractmethod
    def close_intake(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @property
    @abstractmethod
    def pending_events(self) -> int:
        """Events stored and not yet acknowledged (the consumer's lag)."""

    @abstractmethod
    def metrics(self) -> dict[str, float]:
        """Figures for /metrics: at least `events`, `bytes`, `oldest_age_seconds`."""

    def condition(self) -> BufferCondition:
        return BufferCondition(True, pending_events=self.pending_events)
