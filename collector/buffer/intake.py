"""Whether a buffer's intake accepts data: episodes of refused pushes, for `Buffer.condition()`.

A refusal is a push that found no room (`full`) or whose write the disk refused
(`write_failing`). An episode starts at the first refusal and ends when a push
is stored again. With `block` the refused push waits, so the episode ends
exactly when it is stored. With `drop_newest` nothing waits to find out that
room came back, so an episode also ends `REFUSAL_MEMORY` seconds after the
last refusal: an idle buffer is not reported stuck for ever.
"""

from __future__ import annotations

import time

from collector.buffer.base import BufferCondition

REFUSAL_MEMORY = 5.0


class IntakeCondition:
    __slots__ = ("error", "failing_since", "full_since", "refused_at", "when_full")

    def __init__(self, when_full: str) -> None:
        self.when_full = when_full
        self.full_since: float | None = None  # time.monotonic() values
        self.failing_since: float | None = None
        self.refused_at = 0.0
        self.error: str | None = None  # the last write error

    def _faded(self, now: float) -> bool:
        return self.when_full == "drop_newest" and now - self.refused_at > REFUSAL_MEMORY

    def full(self) -> None:
        """A push found no room."""
        now = time.monotonic()
        if self.full_since is None or self._faded(now):
            self.full_since = now
        self.refused_at = now

    def failing(self, error: str) -> float:
        """The disk refused a write; returns how long writes have been failing."""
        now = time.monotonic()
        if self.failing_since is None or self._faded(now):
            self.failing_since = now
        self.refused_at, self.error = now, error
        return now - self.failing_since

    def stored(self) -> float | None:
        """A push was stored: the episode is over. Returns how long writes had failed (None: they had not)."""
        failed = None if self.failing_since is None else time.monotonic() - self.failing_since
        self.full_since = self.failing_since = None
        return failed

    def condition(self, pending_events: int) -> BufferCondition:
        if not self._faded(time.monotonic()):
            if self.failing_since is not None:
                return BufferCondition(False, "write_failing", self.failing_since, self.error, pending_events)
            if self.full_since is not None:
                return BufferCondition(False, "full", self.full_since, pending_events=pending_events)
        return BufferCondition(True, pending_events=pending_events)
