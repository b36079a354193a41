"""OTLP histogram points, checked, and their cumulative → delta differences (see metrics.py).

Explicit-bucket and exponential histogram points become plain dicts holding exactly what was sent
(`_point`), the increase between two cumulative points is computed bucket by bucket (`subtract_*`, None
for a reset), and a delta becomes the metric record's distribution value (`*_value`).
"""

from __future__ import annotations

import math
from typing import Any

from opentelemetry.proto.metrics.v1.metrics_pb2 import ExponentialHistogramDataPoint, HistogramDataPoint

from collector_plugins.common.metrics import exponential


class InvalidPoint(ValueError):
    """A data point the OTLP data model does not allow; the message is the reason given to the client."""


def finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise InvalidPoint(f"{what} is {value!r} (not finite)")
    return value


def extremes(point: Any, hist: dict[str, Any]) -> None:
    has_min, has_max = point.HasField("min"), point.HasField("max")
    if has_min:
        hist["min"] = finite(point.min, "min")
    if has_max:
        hist["max"] = finite(point.max, "max")
    if has_min and has_max and hist["min"] > hist["max"]:
        raise InvalidPoint("min is greater than max")
    if point.HasField("sum"):
        hist["sum"] = finite(point.sum, "sum")


# -- explicit-bucket histograms -------------------------------------------------------------------


def histogram_point(point: HistogramDataPoint) -> dict[str, Any]:
    """The point's exact content, checked: bounds, bucket_counts, count, sum/min/max when present."""
    bounds = list(point.explicit_bounds)
    counts = list(point.bucket_counts)
    hist: dict[str, Any] = {"count": point.count}
    if counts:
        if len(counts) != len(bounds) + 1:
            raise InvalidPoint(f"{len(counts)} bucket counts for {len(bounds)} bounds (need bounds + 1)")
        for i, b in enumerate(bounds):
            if not math.isfinite(b) or (i and b <= bounds[i - 1]):
                raise InvalidPoint("explicit bounds must be finite and strictly increasing")
        if sum(counts) != point.count:
            raise InvalidPoint(f"count {point.count} is not the sum of the bucket counts ({sum(counts)})")
        hist["bounds"] = bounds
        hist["bucket_counts"] = counts
    extremes(point, hist)
    return hist


def subtract_histogram(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    if previous is None:
        return current
    if current["count"] < previous["count"] or current.get("bounds") != previous.get("bounds"):
        return None
    out: dict[str, Any] = {"count": current["count"] - previous["count"]}
    if "bucket_counts" in current:
        counts = [c - p for c, p in zip(current["bucket_counts"], previous["bucket_counts"], strict=True)]
        if any(c < 0 for c in counts):
            return None
        out["bounds"] = current["bounds"]
        out["bucket_counts"] = counts
    _interval_stats(current, previous, out)
    return out


def _interval_stats(current: dict[str, Any], previous: dict[str, Any], out: dict[str, Any]) -> None:
    """Sum, and the interval's min / max where the cumulative ones prove them (a new extreme was reached)."""
    if "sum" in current and "sum" in previous:
        out["sum"] = current["sum"] - previous["sum"]
    if not out["count"]:
        return
    if "min" in current and "min" in previous and current["min"] < previous["min"]:
        out["min"] = current["min"]
    if "max" in current and "max" in previous and current["max"] > previous["max"]:
        out["max"] = current["max"]


def histogram_value(hist: dict[str, Any]) -> dict[str, Any]:
    """The distribution value of a (delta) histogram."""
    value: dict[str, Any] = {k: hist[k] for k in ("bounds", "bucket_counts", "count", "sum", "min", "max") if k in hist}
    if "bounds" not in value and value["count"] and ("min" not in value or "max" not in value):
        # No buckets and no extremes: the mean is the only value it tells (sum and count stay exact)
        mean = value.get("sum", 0.0) / value["count"]
        value = {"values": [mean], "counts": [float(value["count"])], "min": mean, "max": mean, **value}
    return value


# -- exponential histograms -----------------------------------------------------------------------


def exponential_point(point: ExponentialHistogramDataPoint) -> dict[str, Any]:
    scale = point.scale
    if not exponential.MIN_SCALE <= scale <= exponential.MAX_SCALE:
        raise InvalidPoint(f"scale {scale} is outside {exponential.MIN_SCALE}..{exponential.MAX_SCALE}")
    threshold = point.zero_threshold
    if not math.isfinite(threshold) or threshold < 0:
        raise InvalidPoint("zero_threshold must be finite and not negative")
    positive = list(point.positive.bucket_counts)
    negative = list(point.negative.bucket_counts)
    total = point.zero_count + sum(positive) + sum(negative)
    if total != point.count:
        raise InvalidPoint(f"count {point.count} is not zero_count plus the bucket counts ({total})")
    hist: dict[str, Any] = {
        "count": point.count,
        "scale": scale,
        "zero_count": point.zero_count,
        "zero_threshold": threshold,
        "positive": {"offset": point.positive.offset, "bucket_counts": positive},
        "negative": {"offset": point.negative.offset, "bucket_counts": negative},
    }
    for side in (positive, negative):
        if side:  # the highest bucket must have a float bound (base**index overflows beyond ~2**1024)
            offset = hist["positive" if side is positive else "negative"]["offset"]
            exponential.lower_bound(offset + len(side), scale)
    extremes(point, hist)
    return hist


def subtract_exponential(current: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any] | None:
    if previous is None:
        return current
    if current["count"] < previous["count"] or current["zero_threshold"] != previous["zero_threshold"]:
        return None
    # The SDK may lower the scale between exports: compare at the lower of the two.
    scale = min(current["scale"], previous["scale"])
    out: dict[str, Any] = {
        "count": current["count"] - previous["count"],
        "scale": scale,
        "zero_count": current["zero_count"] - previous["zero_count"],
        "zero_threshold": current["zero_threshold"],
    }
    if out["zero_count"] < 0:
        return None
    for side in ("positive", "negative"):
        diff = _bucket_difference(current[side], current["scale"] - scale, previous[side], previous["scale"] - scale)
        if diff is None:
            return None
        out[side] = diff
    _interval_stats(current, previous, out)
    return out


def _bucket_difference(
    current: dict[str, Any], by: int, previous: dict[str, Any], prev_by: int
) -> dict[str, Any] | None:
    """current - previous buckets of one side, both first lowered by their `by`; None if any count went down."""
    c_off, c_counts = current["offset"], current["bucket_counts"]
    p_off, p_counts = previous["offset"], previous["bucket_counts"]
    if by:
        c_off, c_counts = exponential.downscale(c_off, c_counts, by)
    if prev_by:
        p_off, p_counts = exponential.downscale(p_off, p_counts, prev_by)
    if not p_counts:
        return {"offset": c_off, "bucket_counts": list(c_counts)}
    if c_off == p_off and len(c_counts) == len(p_counts):  # the common case: nothing moved
        diff = [c - p for c, p in zip(c_counts, p_counts, strict=True)]
        start = c_off
    else:
        start = min(c_off, p_off)
        end = max(c_off + len(c_counts), p_off + len(p_counts))
        diff = [0] * (end - start)
        for i, c in enumerate(c_counts, c_off - start):
            diff[i] += c
        for i, p in enumerate(p_counts, p_off - start):
            diff[i] -= p
    if min(diff, default=0) < 0:
        return None
    first = next((i for i, c in enumerate(diff) if c), len(diff))
    last = len(diff)
    while last > first and not diff[last - 1]:
        last -= 1
    if first == last:
        return {"offset": 0, "bucket_counts": []}
    return {"offset": start + first, "bucket_counts": diff[first:last]}


def exponential_value(hist: dict[str, Any], max_buckets: int) -> dict[str, Any]:
    """The distribution value of a (delta) exponential histogram, with at most `max_buckets` buckets."""
    pos, neg = hist["positive"], hist["negative"]
    scale = hist["scale"]
    n_pos, n_neg = len(pos["bucket_counts"]), len(neg["bucket_counts"])
    if n_pos + n_neg > max_buckets:
        # One scale for both sides: lower it until both fit together.
        by = 0
        while _span_at(pos, by) + _span_at(neg, by) > max_buckets:
            by += 1
        p_off, p_counts = exponential.downscale(pos["offset"], pos["bucket_counts"], by)
        n_off, n_counts = exponential.downscale(neg["offset"], neg["bucket_counts"], by)
        pos = {"offset": p_off, "bucket_counts": p_counts}
        neg = {"offset": n_off, "bucket_counts": n_counts}
        scale -= by
    value: dict[str, Any] = {
        "scale": scale,
        "zero_count": hist["zero_count"],
        "zero_threshold": hist["zero_threshold"],
        "positive": pos,
        "negative": neg,
        "count": hist["count"],
    }
    for k in ("sum", "min", "max"):
        if k in hist:
            value[k] = hist[k]
    return value


def _span_at(side: dict[str, Any], by: int) -> int:
    counts = side["bucket_counts"]
    if not counts:
        return 0
    offset = side["offset"]
    return ((offset + len(counts) - 1) >> by) - (offset >> by) + 1
