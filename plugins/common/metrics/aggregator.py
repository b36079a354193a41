"""Per-interval aggregation of metric points into one point per series and window.

A series is (type, name, sorted tags); a window is `[k * interval, (k+1) *
interval)` in epoch seconds, so windows line up with CloudWatch's periods and
with every other collector's. Within a window:

- counter: the sum of the increments (already divided by any sample rate);
- gauge: the last value; `+n` / `-n` deltas apply to the last value seen,
  remembered across windows for `gauge_retention` seconds;
- distribution: a `Distribution` (every value with its count, exact sum,
  count, min and max);
- set: the distinct members.

A window is emitted once it has ended (`flush(now)`), each point stamped with
the window's start and `interval`; `flush_all()` at stop also emits the window
still open, so a shutdown loses nothing. Points carrying a timestamp of another
window (an EMF document's own time) are aggregated into that window.

Memory is bounded: at most `max_series` series across the open windows. A
point of a new series beyond that is dropped; drops are counted in the loss
ledger as `cardinality_limit` and logged once per window, naming the metrics.
Nothing here awaits: callers hand over whole batches.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from collector.events import Metric
from collector.log import kv
from collector_plugins.common.metrics.distribution import Distribution, as_distribution, finite_number

SeriesKey = tuple[str, str, tuple[tuple[str, str], ...]]
"""(type, name, sorted tag items)."""

# Intervals that tile a minute or a whole number of minutes, so windows align with CloudWatch periods.
_SUB_MINUTE = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
NAMED_IN_LOG = 5


def check_interval(seconds: float) -> float:
    """An aggregation interval: 1 s to 1 h, dividing a minute or a multiple of one (ValueError otherwise)."""
    if seconds != int(seconds) or not 1 <= seconds <= 3600:
        raise ValueError("the aggregation interval must be a whole number of seconds from 1s to 1h")
    whole = int(seconds)
    if whole not in _SUB_MINUTE and whole % 60:
        raise ValueError(
            f"an interval of {whole}s does not line up with minutes: use one of "
            f"{', '.join(f'{s}s' for s in _SUB_MINUTE)} or a multiple of 60s"
        )
    return float(whole)


class Series:
    """The state of one series in one window."""

    __slots__ = ("dist", "key", "members", "unit", "value")

    def __init__(self, key: SeriesKey, unit: str | None, initial: float = 0.0) -> None:
        self.key = key
        self.unit = unit
        self.value = initial
        """Counter: the sum so far; gauge: the last value."""
        self.dist: Distribution | None = Distribution() if key[0] == "distribution" else None
        self.members: set[str] | None = set() if key[0] == "set" else None

    def to_metric(self, start: float, interval: float) -> Metric:
        kind, name, tags = self.key
        value: Any
        if self.dist is not None:
            value = self.dist.to_value()
        elif self.members is not None:
            value = sorted(self.members)
        else:
            value = self.value
        return Metric(name, kind, value, dict(tags), start, self.unit, interval)  # type: ignore[arg-type]


class Aggregator:
    """Aggregates points per series and window. Owned by one input; synchronous, never awaits."""

    def __init__(
        self,
        interval: float,
        max_series: int,
        *,
        loss: Callable[[str, int], None],
        log: logging.Logger,
        component: str,
        gauge_retention: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval = interval
        self.max_series = max_series
        self.gauge_retention = gauge_retention
        self._loss = loss
        self._log = log
        self._component = component
        self._clock = clock
        self.current_start = self.window_of(clock())
        self.current: dict[SeriesKey, Series] = {}
        """The series of the window now open (the fast path of StatsD writes here)."""
        self._other: dict[float, dict[SeriesKey, Series]] = {}
        self._other_series = 0
        # Last gauge values for deltas, least recently updated first: key -> (value, when).
        self._gauges: dict[SeriesKey, tuple[float, float]] = {}
        self.dropped = 0
        """Points dropped so far because the series limit was reached."""
        self._dropped_window = 0
        self._dropped_names: dict[str, int] = {}

    # ----------------------------------------------------------------- windows and series

    def window_of(self, timestamp: float) -> float:
        return math.floor(timestamp / self.interval) * self.interval

    def until_window_end(self, now: float) -> float:
        """Seconds until the open window ends (0 once it has): when its owner should `flush` next."""
        return max(0.0, self.current_start + self.interval - now)

    @property
    def series_count(self) -> int:
        return len(self.current) + self._other_series

    def new_series(
        self, key: SeriesKey, unit: str | None, table: dict[SeriesKey, Series] | None = None
    ) -> Series | None:
        """Create `key` in `table` (the current window by default); None, counted, when over the limit."""
        if self.series_count >= self.max_series:
            self.drop(key[1], 1)
            return None
        initial = 0.0
        if key[0] == "gauge":
            last = self._gauges.get(key)
            if last is not None:
                initial = last[0]
        series = Series(key, unit, initial)
        if table is None or table is self.current:
            self.current[key] = series
        else:
            table[key] = series
            self._other_series += 1
        return series

    def drop(self, name: str, points: int) -> None:
        """Count `points` of metric `name` dropped for the series limit (reported once per window)."""
        self.dropped += points
        self._dropped_window += points
        names = self._dropped_names
        if name in names or len(names) < NAMED_IN_LOG:
            names[name] = names.get(name, 0) + points

    def _table_for(self, timestamp: float) -> dict[SeriesKey, Series]:
        start = self.window_of(timestamp) if timestamp else self.current_start
        if start == self.current_start:
            return self.current
        table = self._other.get(start)
        if table is None:
            table = self._other[start] = {}
        return table

    # ----------------------------------------------------------------- the generic path

    def add(self, metrics: Iterable[Metric]) -> None:
        """Aggregate a batch of metric records, each into the window of its own timestamp."""
        current, current_start, window_of = self.current, self.current_start, self.window_of
        for metric in metrics:
            ts = metric.timestamp
            table = current if not ts or window_of(ts) == current_start else self._table_for(ts)
            key = (metric.type, metric.name, tuple(sorted(metric.tags.items())))
            series = table.get(key)
            if series is None:
                series = self.new_series(key, metric.unit, table)  # type: ignore[arg-type]
                if series is None:
                    continue
            try:
                self._apply(series, metric.value)
            except (TypeError, ValueError):  # a value that does not fit its type
                self._loss("invalid_metric", 1)

    @staticmethod
    def _apply(series: Series, value: Any) -> None:
        kind = series.key[0]
        if kind == "counter":
            series.value += finite_number(value)
        elif kind == "gauge":
            series.value = finite_number(value)
        elif kind == "distribution":
            assert series.dist is not None
            series.dist.merge(as_distribution(value))
        elif kind == "set":
            assert series.members is not None
            members = value if isinstance(value, list | tuple | set | frozenset) else [value]
            series.members.update(str(m) for m in members)
        else:
            raise ValueError(f"unknown metric type {kind!r}")

    # ----------------------------------------------------------------- emitting

    def flush(self, now: float | None = None) -> list[Metric]:
        """Points of every window that has ended by `now`; the current window moves on to `now`'s."""
        now = self._clock() if now is None else now
        out: list[Metric] = []
        if self.current_start + self.interval <= now:
            out.extend(self._close(self.current_start, self.current, now))
            self.current = {}
            self.current_start = self.window_of(now)
            # A window opened earlier for points stamped with this time becomes the current one.
            adopted = self._other.pop(self.current_start, None)
            if adopted:
                self.current = adopted
                self._other_series -= len(adopted)
        for start in sorted(s for s in self._other if s + self.interval <= now):
            table = self._other.pop(start)
            self._other_series -= len(table)
            out.extend(self._close(start, table, now))
        self._report_drops()
        self._expire_gauges(now)
        return out

    def flush_all(self) -> list[Metric]:
        """Every point held, the open window included (at stop)."""
        now = self._clock()
        out = self._close(self.current_start, self.current, now)
        self.current = {}
        for start in sorted(self._other):
            out.extend(self._close(start, self._other[start], now))
        self._other.clear()
        self._other_series = 0
        self._report_drops()
        return out

    def _close(self, start: float, table: dict[SeriesKey, Series], now: float) -> list[Metric]:
        interval = self.interval
        gauges = self._gauges
        out = []
        for key, series in table.items():
            out.append(series.to_metric(start, interval))
            if key[0] == "gauge":
                gauges.pop(key, None)  # re-inserted last: the dict stays ordered by last update
                gauges[key] = (series.value, now)
        return out

    def _expire_gauges(self, now: float) -> None:
        gauges, oldest_kept = self._gauges, now - self.gauge_retention
        while gauges:
            key = next(iter(gauges))
            if gauges[key][1] >= oldest_kept and len(gauges) <= self.max_series:
                break
            del gauges[key]

    def _report_drops(self) -> None:
        dropped, self._dropped_window = self._dropped_window, 0
        if not dropped:
            return
        names, self._dropped_names = self._dropped_names, {}
        self._loss("cardinality_limit", dropped)
        self._log.warning(
            "series limit reached: points of new series were dropped "
            "(raise max_series, or drop high-cardinality tags at the source)",
            extra=kv(
                component=self._component,
                max_series=self.max_series,
                dropped_points=dropped,
                metrics=",".join(sorted(names)),
            ),
        )
