"""Bounded time windows: sliding counts (frequency, spike, flatline, any) and CloudWatch periods.

Counts are kept in buckets of `resolution` seconds (a hundredth of the window, at least 1 s), so a
window's memory is bounded by about 100 buckets whatever the rate, and the running totals are
updated as buckets enter and leave: reading a count costs nothing.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any


def resolution_for(span: float) -> float:
    return max(1.0, span / 100.0)


class SlidingCount:
    """Matching records per bucket over the last `span` seconds, and over the `span` before it (`ref`)."""

    __slots__ = ("_cur", "_ref", "cur_total", "ref_total", "resolution", "span")

    def __init__(self, span: float) -> None:
        self.span = span
        self.resolution = resolution_for(span)
        self._cur: deque[list[float]] = deque()  # [bucket start, count], newest last
        self._ref: deque[list[float]] = deque()
        self.cur_total = 0
        self.ref_total = 0

    def add(self, now: float, n: int) -> None:
        start = math.floor(now / self.resolution) * self.resolution
        cur = self._cur
        if cur and cur[-1][0] == start:
            cur[-1][1] += n
        else:
            cur.append([start, n])
        self.cur_total += n

    def advance(self, now: float) -> None:
        """Move buckets older than `span` into the reference window, and drop those older than 2 x `span`."""
        cur, ref, span, res = self._cur, self._ref, self.span, self.resolution
        while cur and cur[0][0] + res <= now - span:
            bucket = cur.popleft()
            self.cur_total -= int(bucket[1])
            ref.append(bucket)
            self.ref_total += int(bucket[1])
        while ref and ref[0][0] + res <= now - 2 * span:
            self.ref_total -= int(ref.popleft()[1])

    def empty(self) -> bool:
        return not self._cur and not self._ref

    def dump(self) -> dict[str, Any]:
        return {"cur": list(self._cur), "ref": list(self._ref)}

    def load(self, data: dict[str, Any]) -> None:
        self._cur = deque([float(t), int(n)] for t, n in data.get("cur", ()))
        self._ref = deque([float(t), int(n)] for t, n in data.get("ref", ()))
        self.cur_total = int(sum(n for _, n in self._cur))
        self.ref_total = int(sum(n for _, n in self._ref))


class Periods:
    """One CloudWatch-style datapoint per aligned period; the last N datapoints (None: no data)."""

    __slots__ = ("acc", "current", "history", "keep", "period")

    def __init__(self, period: float, keep: int) -> None:
        self.period = period
        self.keep = keep
        self.current: float | None = None  # start of the open period
        self.acc = [0, 0.0, math.inf, -math.inf]  # count, sum, min, max of the open period
        self.history: deque[list[float] | None] = deque(maxlen=keep)  # closed periods: [count, sum, min, max]

    def _open(self, now: float) -> None:
        if self.current is None:
            self.current = math.floor(now / self.period) * self.period

    def add_count(self, now: float, n: int) -> None:
        self.advance(now)
        self.acc[0] += n

    def add_values(self, now: float, values: list[float]) -> None:
        self.advance(now)
        if values:
            acc = self.acc
            acc[0] += len(values)
            acc[1] += sum(values)
            acc[2] = min(acc[2], min(values))
            acc[3] = max(acc[3], max(values))

    def advance(self, now: float) -> int:
        """Close every period that ended by `now`; returns how many closed."""
        self._open(now)
        assert self.current is not None
        closed = 0
        while now >= self.current + self.period:
            acc = self.acc
            self.history.append(list(acc) if acc[0] else None)
            self.acc = [0, 0.0, math.inf, -math.inf]
            self.current += self.period
            closed += 1
            if closed >= self.keep and now >= self.current + self.period:
                # A long gap: the remaining periods are all empty; jump to the one containing `now`.
                skipped = int((now - self.current) // self.period)
                self.history.extend([None] * min(skipped, self.keep))
                self.current += skipped * self.period
                closed += skipped
        return closed

    def dump(self) -> dict[str, Any]:
        acc = self.acc
        return {
            "current": self.current,
            "acc": [acc[0], acc[1], None if acc[0] == 0 else acc[2], None if acc[0] == 0 else acc[3]],
            "history": list(self.history),
        }

    def load(self, data: dict[str, Any]) -> None:
        self.current = data.get("current")
        count, total, low, high = data.get("acc", [0, 0.0, None, None])
        self.acc = [count, total, math.inf if low is None else low, -math.inf if high is None else high]
        self.history = deque((list(h) if h is not None else None for h in data.get("history", ())), maxlen=self.keep)
