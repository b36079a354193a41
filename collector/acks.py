"""End-to-end acknowledgement: an input learns when its data is safe.

Design note. An input attaches an `AckToken` to each batch it emits. Every
holder of the batch holds one reference on the token and releases it exactly
once when it is done with the batch:

- the runtime, while routing: it retains one reference per consumer that
  receives the batch (fan-out) and releases its own;
- a processor's loop: it passes its reference on with the batch it returns, or
  releases it when the batch is filtered out or split (each part retains).
  When the processor raises, the batch is run record by record
  (`collector/isolation.py`): the parts that come back are routed, each
  retaining the token, the records that fail alone are passed on tagged or
  counted as dropped, and only then is the loop's reference released, so the
  input never commits a position for records that were neither delivered nor
  counted;
- an output's buffer: a disk buffer releases once the batch is durable on disk
  (per its fsync policy); a memory buffer once the output delivered it (or it
  was dead-lettered or dropped, both counted in the loss ledger).

Batches lost to a crash, or still queued when a shutdown runs out of time, are
never released: the input does not commit them and reads them again after a
restart. That is what makes delivery at-least-once.

`AckTracker` turns out-of-order completions into an in-order commit: it calls
`on_commit(position)` with the position of the newest token such that it and
every token before it are complete. Inputs commit source positions (file
offsets, journal cursors, forward-protocol chunk ids) from there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any


class AckToken:
    __slots__ = ("_refs", "_tracker", "done", "position")

    def __init__(self, position: Any, tracker: AckTracker | None = None) -> None:
        self.position = position
        self._refs = 1  # the input's own reference, released by the runtime after routing
        self._tracker = tracker
        self.done = False

    def retain(self, n: int = 1) -> None:
        self._refs += n

    def release(self, n: int = 1) -> None:
        self._refs -= n
        if self._refs <= 0 and not self.done:
            self.done = True
            if self._tracker is not None:
                self._tracker._completed()

    def __repr__(self) -> str:
        return f"AckToken({self.position!r}, refs={self._refs}, done={self.done})"


class AckTracker:
    """Hands out tokens in source order and commits the longest completed prefix."""

    def __init__(self, on_commit: Callable[[Any], None]) -> None:
        self._on_commit = on_commit
        self._pending: deque[AckToken] = deque()
        self.committed: Any = None

    def token(self, position: Any) -> AckToken:
        token = AckToken(position, self)
        self._pending.append(token)
        return token

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def _completed(self) -> None:
        pending = self._pending
        newest = None
        while pending and pending[0].done:
            newest = pending.popleft()
        if newest is not None:
            self.committed = newest.position
            self._on_commit(newest.position)


def release(batch_ack: AckToken | None) -> None:
    if batch_ack is not None:
        batch_ack.release()
