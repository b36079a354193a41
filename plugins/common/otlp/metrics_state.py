"""Cumulative → delta: the previous point of every cumulative OTLP series, bounded.

A cumulative point says "so much since start_time"; CloudWatch and EMF want "so much during this interval".
The difference from the previous point of the same series is that interval's increase, as the CloudWatch
agent and the OpenTelemetry Collector's cumulativetodelta processor compute it:

- the first point of a series only primes the state (what it counted happened before we knew the series);
- a reset (the start time moved, or a monotonic value went down) starts over: when the new start time is not
  before the previous point's time, everything the new point counted happened since then and is the increase;
  otherwise the point only primes again (part of its count may have been sent already);
- a point not newer than the previous one (a retried or reordered export) is a duplicate: nothing is sent.

The state is bounded by `max_series`: a new series beyond it is refused (the caller counts the point as
`cardinality_limit`) unless the least recently seen series has not been seen for `idle_after` seconds, in
which case that one is forgotten to make room (a series that stopped should not hold a slot for ever).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

PRIMED = "primed"
DUPLICATE = "duplicate"
REFUSED = "refused"


@dataclass(slots=True)
class Previous:
    start: int
    time: int
    value: Any
    seen: float


class SeriesState:
    """The previous point per series key; not thread-safe (one converter, one event loop)."""

    def __init__(self, max_series: int, idle_after: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        self.max_series = max_series
        self.idle_after = idle_after
        self._clock = clock
        self._series: OrderedDict[Hashable, Previous] = OrderedDict()
        self.refused = 0
        self.resets = 0
        self.expired = 0

    def __len__(self) -> int:
        return len(self._series)

    def update(
        self, key: Hashable, start: int, when: int, value: Any, subtract: Callable[[Any, Any], Any | None]
    ) -> tuple[str, Any, int]:
        """("delta", increase, previous time) or (PRIMED | DUPLICATE | REFUSED, None, 0) for a cumulative point.

        `subtract(current, previous)` is the increase, or None when the value went down (a reset).
        """
        now = self._clock()
        series = self._series
        prev = series.get(key)
        if prev is None:
            if len(series) >= self.max_series and not self._evict(now):
                self.refused += 1
                return REFUSED, None, 0
            series[key] = Previous(start, when, value, now)
            return PRIMED, None, 0
        series.move_to_end(key)
        prev.seen = now
        if when <= prev.time and start == prev.start:
            return DUPLICATE, None, 0
        increase = subtract(value, prev.value) if start == prev.start else None
        if increase is None:
            self.resets += 1
            restarted_after = start != prev.start and start >= prev.time
            prev_time = prev.time
            prev.start, prev.time, prev.value = start, when, value
            if restarted_after:
                return "delta", subtract(value, None), start if start else prev_time
            return PRIMED, None, 0
        prev_time = prev.time
        prev.time, prev.value = when, value
        return "delta", increase, prev_time

    def _evict(self, now: float) -> bool:
        """Forget the least recently seen series if it has been idle long enough; True if room was made."""
        oldest_key = next(iter(self._series), None)
        if oldest_key is None:
            return False
        if now - self._series[oldest_key].seen < self.idle_after:
            return False
        del self._series[oldest_key]
        self.expired += 1
        return True
