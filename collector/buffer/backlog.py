"""What a disk buffer's log says about a backlog left by a previous run, while it drains.

At start: how big it is (one INFO line). While draining: a progress line at most
every `interval` seconds. When the committed position passes the end of what the
previous run left: one summary line. Positions, not event counts, tell progress:
new data appended meanwhile goes to segments after the backlog and never counts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from collector.buffer.recovery import Recovered

BACKLOG_LOG_SECONDS = 30.0  # progress lines while draining, at most this often


class BacklogReport:
    def __init__(
        self,
        rec: Recovered,
        events: int,
        log: logging.Logger,
        kv: Callable[..., dict[str, Any]],
        interval: float = BACKLOG_LOG_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sizes = {s.id: s.size for s in rec.segments}
        self._start = (rec.commit_segment, rec.commit_offset)
        self._end = (rec.segments[-1].id, rec.segments[-1].size)
        self.total_bytes = self._done(self._end)
        self.events = events
        self._log, self._kv, self._interval, self._clock = log, kv, interval, clock
        self._started = self._logged = clock()
        self.finished = False
        log.info(
            "disk buffer resumed with a backlog from the previous run; draining it first",
            extra=kv(segments=len(rec.segments), bytes=self.total_bytes, events=events),
        )

    def _done(self, position: tuple[int, int]) -> int:
        """Backlog bytes before `position`, counted from the committed position at start."""
        seg, off = min(position, self._end)
        before = sum(size for sid, size in self._sizes.items() if sid < seg) + (off if seg in self._sizes else 0)
        start_seg, start_off = self._start
        return max(0, before - sum(size for sid, size in self._sizes.items() if sid < start_seg) - start_off)

    def check(self, committed: tuple[int, int], pending_events: int) -> None:
        """Called as delivery advances (the buffer's background task); logs per the interval."""
        if self.finished:
            return
        now = self._clock()
        if committed >= self._end:  # past the last byte the previous run left
            self.finished = True
            self._log.info(
                "disk buffer backlog drained",
                extra=self._kv(events=self.events, bytes=self.total_bytes, seconds=round(now - self._started, 1)),
            )
            return
        if now - self._logged < self._interval:
            return
        self._logged = now
        done = self._done(committed)
        self._log.info(
            "disk buffer draining backlog",
            extra=self._kv(
                done_bytes=done,
                bytes=self.total_bytes,
                percent=round(100 * done / self.total_bytes, 1) if self.total_bytes else 100.0,
                pending_events=pending_events,
                seconds=round(now - self._started, 1),
            ),
        )
