"""Distributions: every observed value with its count, so percentiles stay computable.

A `Distribution` keeps `value -> count` (counts may be fractional: a StatsD
sample rate of 0.1 makes one observation count 10), plus the exact sum, count,
minimum and maximum. It is never reduced to an average.

Memory is bounded: up to `EXACT_LIMIT` distinct values are kept exactly (the
common case of few distinct latencies fits one CloudWatch datum, 150 values);
past that, values are merged into logarithmic buckets. A bucket covers
[g**k, g**(k+1)) with g = 1.01 and keeps its count and the sum of its values;
1 ns to 1e9 s spans ~4,200 buckets, so the bucket count stays small whatever
the sender does.

What a bucketed distribution hands out (`pairs`, `to_value`) keeps the
statistics exact *in the values themselves*, because CloudWatch computes Sum,
Minimum and Maximum from the Values/Counts it is sent: each bucket is
represented by the mean of its values (so sum(value x count) is the exact sum),
and the exact minimum and maximum are carved out of the first and last buckets
as values of their own. Every representative lies inside its bucket, so any
percentile read back is within `RELATIVE_ERROR` (1 %) of the true sample's.

The value forms a metric record may carry for a distribution (all handled by
`as_distribution`): a list of numbers (each observed once); a mapping with
`values` and optional `counts`; a statistic set `{"sum", "count", "min",
"max"}` (with or without values); both together, as the aggregator emits them;
a histogram `{"bounds": [...], "bucket_counts": [...], "sum", "count"}`
(Prometheus and OTLP buckets, counts per bucket, the last one for +Inf; OTLP adds `min` and `max`);
an exponential histogram `{"scale", "zero_count", "positive", "negative", "sum", "count", "min", "max"}`
(OTLP's base-2 buckets, see exponential.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from collector_plugins.common.metrics import exponential
from collector_plugins.common.metrics.buckets import representatives

EXACT_LIMIT = 150
GROWTH = 1.01
RELATIVE_ERROR = GROWTH - 1
"""Two values of one bucket differ by less than this, relatively: a bucket's mean stands for all of them."""
_LOG_GROWTH = math.log(GROWTH)


def bucket_value(value: float) -> float:
    """The key of `value`'s logarithmic bucket: its midpoint (0 stays 0; the sign is kept)."""
    if value == 0:
        return 0.0
    magnitude = abs(value)
    index = math.floor(math.log(magnitude) / _LOG_GROWTH)
    representative = (GROWTH**index) * (1 + GROWTH) / 2
    return representative if value > 0 else -representative


class Distribution:
    """Observed values with their counts; exact statistics. Not thread-safe (one owner)."""

    __slots__ = ("bucketed", "count", "counts", "limit", "max", "min", "sum", "sums")

    def __init__(self, limit: int | None = EXACT_LIMIT) -> None:
        self.limit = limit
        """Distinct values kept exactly before bucketing; None never buckets (values already bounded)."""
        self.counts: dict[float, float] = {}
        self.count = 0.0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.bucketed = False
        """True once values were merged into logarithmic buckets (percentiles then within 1 %)."""
        self.sums: dict[float, float] = {}
        """Once bucketed: the sum of the values in each bucket (same keys as `counts`)."""

    def add(self, value: float, weight: float = 1.0) -> None:
        self.count += weight
        self.sum += value * weight
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        counts = self.counts
        if self.bucketed:
            key = bucket_value(value)
            counts[key] = counts.get(key, 0.0) + weight
            sums = self.sums
            sums[key] = sums.get(key, 0.0) + value * weight
            return
        counts[value] = counts.get(value, 0.0) + weight
        if self.limit is not None and len(counts) > self.limit:
            self._to_buckets()

    def add_values(self, values: Iterable[float], weight: float = 1.0) -> None:
        for value in values:
            self.add(value, weight)

    def merge(self, other: Distribution) -> None:
        """Add everything `other` observed (its exact statistics included)."""
        if not other.count:
            return
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if other.bucketed and not self.bucketed:
            self._to_buckets()
        counts = self.counts
        bucketed = self.bucketed
        sums = self.sums
        for value, count in other.counts.items():
            if bucketed:
                key = bucket_value(value)
                total = other.sums[value] if other.bucketed else value * count
                sums[key] = sums.get(key, 0.0) + total
            else:
                key = value
            counts[key] = counts.get(key, 0.0) + count
        if not bucketed and self.limit is not None and len(counts) > self.limit:
            self._to_buckets()

    def _to_buckets(self) -> None:
        merged: dict[float, float] = {}
        sums: dict[float, float] = {}
        for value, count in self.counts.items():
            key = bucket_value(value)
            merged[key] = merged.get(key, 0.0) + count
            sums[key] = sums.get(key, 0.0) + value * count
        self.counts = merged
        self.sums = sums
        self.bucketed = True

    def __len__(self) -> int:
        return len(self.counts)

    def pairs(self) -> list[tuple[float, float]]:
        """(value, count) sorted by value; once bucketed, with sum, minimum and maximum exact (see above)."""
        if not self.bucketed:
            return sorted(self.counts.items())
        lo, hi = self.min, self.max
        sums = self.sums
        # A bucket's mean, clamped to the extremes (a float rounding must not make a new minimum or maximum).
        pairs = [(min(max(sums[k] / c, lo), hi), c) for k, c in sorted(self.counts.items()) if c > 0]
        if not pairs:
            return []
        pairs[:1] = _carve(pairs[0], lo, lo, hi)
        pairs[-1:] = _carve(pairs[-1], hi, lo, hi)
        return pairs

    def quantile(self, q: float) -> float:
        """The value at quantile `q` (0..1), nearest rank; NaN when empty."""
        return quantile(self.pairs(), q)

    def to_value(self) -> dict[str, Any]:
        """The metric value form: values and counts (sorted) plus the exact statistic set."""
        pairs = self.pairs()
        return {
            "values": [v for v, _ in pairs],
            "counts": [c for _, c in pairs],
            "sum": self.sum,
            "count": self.count,
            "min": self.min,
            "max": self.max,
        }


def _carve(pair: tuple[float, float], extreme: float, lo: float, hi: float) -> list[tuple[float, float]]:
    """`pair` (a bucket's mean and count) as the exact `extreme` plus the mean of the rest, same total.

    The extreme takes a count of 1 (what it observed at least, unless sample rates made counts fractional)
    and the rest keeps the bucket's sum, so CloudWatch's Minimum or Maximum is the exact one while Sum and
    SampleCount do not change. The rest's mean stays within [lo, hi] (the count carved is reduced if needed).
    """
    mean, count = pair
    if mean == extreme or count <= 0:
        return [(extreme, count)] if mean == extreme else [pair]
    # The rest's mean moves away from `extreme`; the far bound it must not cross is hi (carving lo) or lo.
    bound = hi if extreme <= mean else lo
    carved = min(1.0, count / 2)
    if bound != extreme:
        carved = min(carved, count * (bound - mean) / (bound - extreme))
    if carved <= 0:
        return [pair]
    rest = (mean * count - extreme * carved) / (count - carved)
    rest = min(max(rest, lo), hi)
    out = [(extreme, carved), (rest, count - carved)]
    return out if extreme <= mean else out[::-1]


def quantile(pairs: list[tuple[float, float]], q: float) -> float:
    """Nearest-rank quantile over (value, count) pairs sorted by value."""
    total = sum(c for _, c in pairs)
    if total <= 0:
        return math.nan
    rank = max(q * total, 1e-12)
    seen = 0.0
    for value, count in pairs:
        seen += count
        if seen >= rank - 1e-9:
            return value
    return pairs[-1][0]


def as_distribution(value: Any, limit: int | None = EXACT_LIMIT) -> Distribution:
    """A `Distribution` from any distribution value form; ValueError for anything else.

    A statistic set without values keeps its exact statistics and no values
    (`len() == 0`): outputs then send it as a statistic set. `limit=None` keeps
    every distinct value (outputs: what they are given is already bounded).
    """
    dist = Distribution(limit)
    if isinstance(value, list | tuple):
        for v in value:
            dist.add(_number(v))
        return dist
    if not isinstance(value, Mapping):
        raise ValueError(f"a distribution value must be a list or a mapping, not {type(value).__name__}")
    buckets = "bounds" in value or "scale" in value
    if "bounds" in value:
        _add_buckets(dist, value)
        values = None
    elif "scale" in value:
        for point, count in representatives(exponential.buckets(value), *_extremes(value), _sum_of(value)):
            dist.add(point, count)
        values = None
    else:
        values = value.get("values")
    if values is not None:
        counts = value.get("counts")
        if counts is None:
            counts = [1.0] * len(values)
        if len(counts) != len(values):
            raise ValueError("a distribution's values and counts differ in length")
        for v, c in zip(values, counts, strict=True):
            count = _number(c)
            if count < 0:
                raise ValueError("a distribution count cannot be negative")
            if count:
                dist.add(_number(v), count)
    if "count" in value:
        # The statistic set is authoritative (values may have been bucketed; sum/min/max are exact).
        count = _number(value["count"])
        if count < 0:
            raise ValueError("a distribution count cannot be negative")
        dist.count = count
        dist.sum = _number(value.get("sum", dist.sum if values is not None or buckets else 0.0))
        if count:
            dist.min = _number(value.get("min", dist.min))
            dist.max = _number(value.get("max", dist.max))
    elif values is None and not buckets:
        raise ValueError(
            "a distribution mapping needs `values`, `bounds`, `scale` or a statistic set (`count`, `sum`, ...)"
        )
    return dist


def _add_buckets(dist: Distribution, value: Mapping[str, Any]) -> None:
    """A histogram's buckets as values (see buckets.py: exact sum, min and max; percentiles within a bucket).

    `bounds` are the finite upper bounds (Prometheus `le`), increasing; `bucket_counts` has one more entry
    (the +Inf bucket) and counts per bucket, not cumulated.
    """
    lo, hi = _extremes(value)
    bounds = [_number(b) for b in value["bounds"]]
    counts = [_number(c) for c in value.get("bucket_counts", ())]
    if len(counts) != len(bounds) + 1:
        raise ValueError("a histogram needs one bucket count per bound, plus the +Inf bucket")
    if any(b >= a for a, b in zip(bounds[1:], bounds, strict=False)) or any(c < 0 for c in counts):
        raise ValueError("histogram bounds must increase and bucket counts cannot be negative")
    edges = [-math.inf, *bounds, math.inf]
    spans = [(edges[i], edges[i + 1], count) for i, count in enumerate(counts)]
    for point, count in representatives(spans, lo, hi, _sum_of(value)):
        dist.add(point, count)


def _sum_of(value: Mapping[str, Any]) -> float | None:
    total = value.get("sum")
    return _number(total) if total is not None else None


def _extremes(value: Mapping[str, Any]) -> tuple[float, float]:
    """The value form's finite `min` and `max` (-inf / +inf when absent): what representatives stay within."""
    lo, hi = value.get("min"), value.get("max")
    low = _number(lo) if lo is not None else -math.inf
    high = _number(hi) if hi is not None else math.inf
    if not math.isfinite(low) or not math.isfinite(high) or low > high:
        return -math.inf, math.inf
    return low, high


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def finite_number(value: Any) -> float:
    """`value` as a float; ValueError unless it is a finite int or float (a bool is not a number here)."""
    number = _number(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number
