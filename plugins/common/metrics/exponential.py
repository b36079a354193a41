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


def downscale(offset: int, counts: Sequence[int | float], by: int) -> tuple[int, list[float]]:
    """The same buckets at scale - `by`: index i becomes i >> by (2**by buckets merged); counts unchanged in total."""
    if by <= 0 or not counts:
        return offset, [float(c) for c in counts]
    first = offset >> by
    out = [0.0] * (((offset + len(counts) - 1) >> by) - first + 1)
    for i, c in enumerate(counts):
        out[((offset + i) >> by) - first] += c
    return first, out


def buckets(value: Mapping[str, Any]) -> list[tuple[float, float, float]]:
    """(lower, upper, count) of every non-empty bucket of an exponential value form, sorted by bound.

    The zero bucket is [-zero_threshold, zero_threshold]. ValueError for a malformed form or a bucket beyond
    the float range.
    """
    scale = value.get("scale")
    if isinstance(scale, bool) or not isinstance(scale, int) or not MIN_SCALE <= scale <= MAX_SCALE:
        raise ValueError(f"an exponential histogram's scale is an integer in {MIN_SCALE}..{MAX_SCALE}")
    out: list[tuple[float, float, float]] = []
    try:
        for negative in (True, False):
            side = value.get("negative" if negative else "positive") or {}
            offset = side.get("offset", 0)
            if isinstance(offset, bool) or not isinstance(offset, int):
                raise ValueError("a bucket offset must be an integer")
            for i, count in enumerate(side.get("bucket_counts", ())):
                if isinstance(count, bool) or not isinstance(count, int | float) or not count >= 0:
                    raise ValueError("bucket counts are non-negative numbers")
                if count:
                    lower, upper = lower_bound(offset + i, scale), lower_bound(offset + i + 1, scale)
                    out.append((-upper, -lower, float(count)) if negative else (lower, upper, float(count)))
    except OverflowError:
        raise ValueError("a bucket lies beyond the float range") from None
    zero = value.get("zero_count", 0)
    threshold = value.get("zero_threshold", 0.0)
    if isinstance(zero, bool) or not isinstance(zero, int | float) or not zero >= 0:
        raise ValueError("zero_count is a non-negative number")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < math.inf:
        raise ValueError("zero_threshold is a finite non-negative number")
    if zero:
        out.append((-float(threshold), float(threshold), float(zero)))
    out.sort()
    return out
