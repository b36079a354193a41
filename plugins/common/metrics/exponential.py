"""Exponential histograms (OpenTelemetry's base-2 buckets): bucket bounds, downscaling, the value form.

At scale `s` the base is 2**(2**-s); positive bucket `i` holds the values in (base**i, base**(i+1)], negative
bucket `i` the values in [-base**(i+1), -base**i), and the zero bucket those within `zero_threshold` of 0
(OpenTelemetry data model, "ExponentialHistogram", checked 2026-12-06:
https://opentelemetry.io/docs/specs/otel/metrics/data-model/#exponentialhistogram).

The metric value form (a `distribution` value, see distribution.py) is

    {"scale": s, "zero_count": n, "zero_threshold": t,
     "positive": {"offset": i0, "bucket_counts": [...]}, "negative": {"offset": j0, "bucket_counts": [...]},
     "sum": ..., "count": ..., "min": ..., "max": ...}

Bucket counts stay exact; lowering the scale by `k` merges 2**k neighbouring buckets into one, which is how a
point with too many buckets is made bounded without losing any count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

MIN_SCALE = -10
MAX_SCALE = 20
"""The scales OpenTelemetry defines (the SDKs never go past 20: base 2**(2**-20) is ~1 + 6.6e-7)."""


def lower_bound(index: int, scale: int) -> float:
    """base**index at `scale` (exact for scale <= 0); OverflowError when it does not fit a float."""
    if scale <= 0:
        return math.ldexp(1.0, index << -scale)
    return float(2.0 ** (index / (1 << scale)))


def representative(index: int, scale: int) -> float:
    """A positive bucket's representative: the middle of (base**index, base**(index+1)]."""
    lo = lower_bound(index, scale)
    hi = lower_bound(index + 1, scale)
    return lo + (hi - lo) / 2


def downscale(offset: int, counts: Sequence[int | float], by: int) -> tuple[int, list[float]]:
    """The same buckets at scale - `by`: index i becomes i >> by (2**by buckets merged); counts unchanged in total."""
    if by <= 0 or not counts:
        return offset, [float(c) for c in counts]
    first = offset >> by
    out = [0.0] * (((offset + len(counts) - 1) >> by) - first + 1)
    for i, c in enumerate(counts):
        out[((offset + i) >> by) - first] += c
    return first, out


def buckets(value: Mapping[str, Any]) -> list[tuple[float, float]]:
    """(representative, count) of every non-empty bucket of an exponential value form, sorted by value.

    ValueError for a malformed form; OverflowError escapes as ValueError too (a bucket beyond float range).
    """
    scale = value.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, int) or not MIN_SCALE <= scale <= MAX_SCALE:
        raise ValueError(f"an exponential histogram's scale is an integer in {MIN_SCALE}..{MAX_SCALE}")
    out: list[tuple[float, float]] = []
    try:
        for sign, key in ((-1.0, "negative"), (1.0, "positive")):
            side = value.get(key) or {}
            offset = side.get("offset", 0)
            if isinstance(offset, bool) or not isinstance(offset, int):
                raise ValueError(f"{key}.offset must be an integer")
            for i, count in enumerate(side.get("bucket_counts", ())):
                if isinstance(count, bool) or not isinstance(count, int | float) or count < 0:
                    raise ValueError("bucket counts are non-negative numbers")
                if count:
                    out.append((sign * representative(offset + i, scale), float(count)))
    except OverflowError:
        raise ValueError("a bucket lies beyond the float range") from None
    zero = value.get("zero_count", 0)
    if isinstance(zero, bool) or not isinstance(zero, int | float) or zero < 0:
        raise ValueError("zero_count is a non-negative number")
    if zero:
        out.append((0.0, float(zero)))
    out.sort()
    return out
