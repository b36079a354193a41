"""OTLP points passed through to the exposition with the sender's own cumulative values.

A record the OTLP converter made (plugins/common/otlp/metrics.py) carries the point as received under
`source` (`format: otlp`). When that point is cumulative, the exporter exposes the sender's totals rather
than re-accumulating the converter's increases (the first cumulative point of a series produces no record,
and a collector restart would re-base the counters):

- monotonic cumulative Sum → counter `<name>_total` with the point's value;
- cumulative Histogram → histogram: `_bucket` (cumulated over `le`, bounds written as Go does), `_count`,
  `_sum`;
- cumulative ExponentialHistogram → a classic histogram whose `le` are the buckets' upper bounds (negative
  buckets, the zero bucket at `zero_threshold`, positive buckets): the same counts, bucket by bucket;
- Summary (cumulative by definition) → summary: every quantile (NaN ones included), `_sum`, `_count`.

Anything else (gauges, delta points, non-monotonic cumulative sums that are gauges already, a point whose
record a processor renamed) takes the exporter's accumulating path.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from collector.events import Metric
from collector_plugins.common.metrics import exponential

Labels = tuple[tuple[str, str], ...]
Passed = tuple[str, str, tuple[str, Labels], list[Sample]]
"""(family name, family type, series key, samples)."""


def is_level_change(source: dict[str, Any] | None) -> bool:
    """True for an OTLP non-monotonic delta sum: a change of a level, not a count."""
    return (
        source is not None
        and source.get("format") == "otlp"
        and source.get("type") == "sum"
        and source.get("temporality") == "delta"
        and not source.get("monotonic")
    )


def samples(metric: Metric, source: dict[str, Any], labels: Labels, name_of: Callable[[str], str]) -> Passed | None:
    """The series to expose for `metric` as the sender's own, or None to take the accumulating path."""
    kind = source.get("type")
    name = str(source.get("name", ""))
    if kind == "summary":
        if metric.name not in (name, name + "_sum", name + "_count"):
            return None
        return _summary(name_of(name), source, labels)
    if metric.name != name or source.get("temporality") != "cumulative":
        return None
    family = name_of(name)
    plain = dict(labels)
    if kind == "sum":
        if not source.get("monotonic"):
            return None
        family = family.removesuffix("_total")
        sample = Sample(family + "_total", plain, float(source["value"]))
        return family, "counter", (family + "_total", labels), [sample]
    if kind == "histogram":
        if "bounds" not in source:
            return None
        les = [*source["bounds"], math.inf]
        buckets = list(zip(les, source["bucket_counts"], strict=True))
    elif kind == "exponential_histogram":
        buckets = _exponential_buckets(source)
    else:
        return None
    out = []
    running = 0.0
    for le, count in buckets:
        running += count
        out.append(Sample(family + "_bucket", {**plain, "le": floatToGoString(le)}, running))
    out.append(Sample(family + "_count", plain, float(source["count"])))
    if "sum" in source:
        out.append(Sample(family + "_sum", plain, float(source["sum"])))
    return family, "histogram", (family, labels), out


def _summary(family: str, source: dict[str, Any], labels: Labels) -> Passed:
    plain = {k: v for k, v in labels if k != "quantile"}
    out = [Sample(family, {**plain, "quantile": floatToGoString(q)}, float(v)) for q, v in source.get("quantiles", ())]
    out.append(Sample(family + "_sum", plain, float(source["sum"])))
    out.append(Sample(family + "_count", plain, float(source["count"])))
    return family, "summary", (family, tuple(sorted(plain.items()))), out


def _exponential_buckets(source: dict[str, Any]) -> list[tuple[float, float]]:
    """(upper bound, count) of the point's buckets in increasing order, +Inf last (count 0)."""
    scale = int(source["scale"])
    out: list[tuple[float, float]] = []
    negative = source["negative"]
    offset = int(negative["offset"])
    counts = list(negative["bucket_counts"])
    # Negative bucket i holds [-base**(i+1), -base**i): the most negative first; its upper end is -base**i.
    for i in range(len(counts) - 1, -1, -1):
        _append(out, -exponential.lower_bound(offset + i, scale), counts[i])
    _append(out, float(source["zero_threshold"]), source["zero_count"])
    positive = source["positive"]
    offset = int(positive["offset"])
    for i, count in enumerate(positive["bucket_counts"]):
        _append(out, exponential.lower_bound(offset + i + 1, scale), count)
    out.append((math.inf, 0.0))
    return out


def _append(out: list[tuple[float, float]], le: float, count: float) -> None:
    # `le` must increase; a bound not above the previous one (a zero threshold wider than the first
    # buckets) adds its count to that bucket instead
    if out and le <= out[-1][0]:
        out[-1] = (out[-1][0], out[-1][1] + count)
    else:
        out.append((le, float(count)))
