"""Histogram buckets as values: the representative values a distribution of bucket counts is sent as.

CloudWatch (and EMF) receive values with counts, and compute Sum, Minimum and Maximum from them; a histogram
only says how many observations fell in each bucket. The values chosen here keep what the histogram knows
exact in what CloudWatch computes, and every percentile within the bucket it belongs to:

- each non-empty bucket is represented inside its bounds (its middle; an open-ended bucket by its finite
  bound, the lowest one by half its bound when that is positive, as Prometheus buckets were always sent);
- the known minimum and maximum (OTLP histograms carry them) are values of their own, one observation each,
  taken from the lowest and highest non-empty buckets, and no representative lies outside them;
- the representatives then move within their buckets, all by the same fraction of the room they have,
  until the values add up to the histogram's exact `sum` (an open-ended bucket without a known extreme takes
  whatever the others cannot). A sum no placement within the buckets can reach (data that contradicts
  itself) is approached as far as the buckets allow; the datum's statistic set still carries the exact one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Bucket = tuple[float, float, float]
"""(lower bound, upper bound, count); -inf / +inf for open ends."""


def representatives(buckets: Sequence[Bucket], lo: float, hi: float, total: float | None) -> list[tuple[float, float]]:
    """(value, count) pairs, sorted, for non-empty `buckets` sorted by bound; `lo`/`hi` infinite when unknown."""
    entries: list[list[float]] = []  # [value, count, lower, upper]
    for lower, upper, count in buckets:
        if count <= 0:
            continue
        a, b = max(lower, lo), min(upper, hi)
        if a > b:  # the extremes contradict the bucket: the extreme nearest to it
            a = b = min(max(lower, lo), hi)
        entries.append([_middle(a, b), count, a, b])
    if not entries:
        return []
    if math.isfinite(lo):
        _pin(entries, 0, lo)
    if math.isfinite(hi):
        _pin(entries, len(entries) - 1, hi)
    if total is not None and math.isfinite(total):
        _fit(entries, total)
    return [(e[0], e[1]) for e in entries]


def _middle(a: float, b: float) -> float:
    if math.isfinite(a) and math.isfinite(b):
        middle = (a + b) / 2
        return middle if math.isfinite(middle) else a / 2 + b / 2  # a + b beyond the float range
    if math.isfinite(b):
        return b / 2 if b > 0 else b
    if math.isfinite(a):
        return a
    return 0.0


def _pin(entries: list[list[float]], index: int, extreme: float) -> None:
    """`extreme` as a value of its own, one observation taken from the entry at `index`."""
    value, count, a, b = entries[index]
    if value == extreme and a == b:
        return
    taken = min(1.0, count)
    pinned = [extreme, taken, extreme, extreme]
    if count <= taken:
        entries[index] = pinned
    elif index == 0:
        entries[index : index + 1] = [pinned, [value, count - taken, a, b]]
    else:
        entries[index : index + 1] = [[value, count - taken, a, b], pinned]


def _fit(entries: list[list[float]], total: float) -> None:
    delta = total - math.fsum(e[0] * e[1] for e in entries)
    if delta == 0:
        return
    up = delta > 0
    room = [((e[3] - e[0]) if up else (e[0] - e[2])) * e[1] for e in entries]
    open_ended = [i for i, r in enumerate(room) if math.isinf(r)]
    if open_ended:  # an unbounded bucket can take all of it
        e = entries[open_ended[-1] if up else open_ended[0]]
        e[0] += delta / e[1]
        return
    capacity = math.fsum(room)
    if capacity <= 0:
        return
    fraction = min(1.0, abs(delta) / capacity)
    for e in entries:
        target = e[3] if up else e[2]
        e[0] = min(max(e[0] + fraction * (target - e[0]), e[2]), e[3])
