"""`Metric` records → an ExportMetricsServiceRequest, keeping exact values (the `otlp` output's metrics).

    encoded = encode_metrics(records)     # Encoded(request, kept, rejected)

Per record type:

- `gauge` → Gauge (a gauge that came from a non-monotonic cumulative OTLP sum goes back to that Sum);
- `counter` → Sum, delta temporality, monotonic unless the value is negative (a signed change), start time =
  timestamp - interval;
- `distribution` → a delta Histogram: `{bounds, bucket_counts, ...}` as it is; `{scale, positive, ...}` as an
  ExponentialHistogram; raw values (a list, or `{"values", "counts"}`) as a histogram whose bounds are the
  distinct values, so every value and count is kept exactly (bucket i holds the values equal to bound i);
- `set` → Gauge of the number of members.

Tags become point attributes. A record that came from OTLP (`Metric.source["format"] == "otlp"`, set by the
otlp input) gets its resource, scope, description, UCUM unit, start/time nanoseconds and the typed attribute
values back (a tag whose text equals the original value's text gets the original value; a tag equal to a
resource attribute goes back to the resource), so OTLP in → OTLP out is exact for delta data.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    HistogramDataPoint,
    NumberDataPoint,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Metric as OtlpMetric,
)

from collector.events import Metric
from collector_plugins.common.otlp.encode import NANOS, Encoded, _Grouper, seconds_to_nanos, set_attributes
from collector_plugins.common.otlp.metrics import tag_value

DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
# CloudWatch unit names → UCUM (the inverse of common/metrics/units.from_ucum for the common ones).
_UCUM = {
    "Seconds": "s",
    "Milliseconds": "ms",
    "Microseconds": "us",
    "Bytes": "By",
    "Kilobytes": "kBy",
    "Megabytes": "MBy",
    "Gigabytes": "GBy",
    "Percent": "%",
    "Count": "1",
    "Bytes/Second": "By/s",
    "Count/Second": "1/s",
}


def encode_metrics(records: Iterable[Any]) -> Encoded:
    request = ExportMetricsServiceRequest()
    grouper = _Grouper(request.resource_metrics.add, "metrics", "scope_metrics")
    out = Encoded(request)
    for index, record in enumerate(records):
        if not isinstance(record, Metric):
            out.rejected.append((index, f"a metrics record must be a Metric, not {type(record).__name__}"))
            continue
        source = record.source if isinstance(record.source, Mapping) and record.source.get("format") == "otlp" else None
        metrics = grouper.items(source.get("resource"), source.get("scope")) if source else grouper.items(None, None)
        metric = metrics.add(name=record.name)
        try:
            _metric(record, source, metric)
        except (ValueError, TypeError, OverflowError) as exc:
            del metrics[len(metrics) - 1]
            out.rejected.append((index, f"metric {record.name!r}: {exc}"))
            continue
        out.kept.append(index)
        out.items.append(metric)
    return out


def _metric(record: Metric, source: Mapping[str, Any] | None, metric: OtlpMetric) -> None:
    if source:
        metric.description = str(source.get("description") or "")
        metric.unit = str(source.get("unit") or "")
    elif record.unit:
        metric.unit = _UCUM.get(record.unit, record.unit)
    end = seconds_to_nanos(record.timestamp) if record.timestamp > 0 else 0
    start = end - round(record.interval * NANOS) if record.interval and end else 0
    if source:
        end = int(source.get("time_unix_nano") or end)
        if source.get("temporality", "delta") == "delta" or record.type == "gauge":
            start = int(source.get("start_time_unix_nano") or start)
    attrs = _attributes(record.tags, source)
    kind = record.type
    if kind == "gauge":
        if source and source.get("type") == "sum" and source.get("temporality") == "cumulative":
            data = metric.sum
            data.aggregation_temporality = CUMULATIVE
            data.is_monotonic = bool(source.get("monotonic"))
        else:
            data = metric.gauge
        _number(data.data_points.add(), record.value, source, start, end, attrs)
    elif kind == "counter":
        data = metric.sum
        data.aggregation_temporality = DELTA
        data.is_monotonic = float(record.value) >= 0
        _number(data.data_points.add(), record.value, source, start, end, attrs)
    elif kind == "set":
        members = record.value if isinstance(record.value, (list, tuple, set, frozenset)) else ()
        _number(metric.gauge.data_points.add(), len(members), None, start, end, attrs)
    elif kind == "distribution":
        _distribution(metric, record.value, start, end, attrs)
    else:
        raise ValueError(f"unknown metric type {kind!r}")


def _attributes(tags: Mapping[str, str], source: Mapping[str, Any] | None) -> dict[str, Any]:
    if not source:
        return dict(tags)
    original = source.get("attributes") or {}
    resource = source.get("resource") or {}
    attrs: dict[str, Any] = {}
    for key, text in tags.items():
        if key in original and _text(original[key]) == text:
            attrs[key] = original[key]
        elif key in resource and key not in original and _text(resource[key]) == text:
            continue  # a resource attribute copied into the tags: it is in the resource already
        else:
            attrs[key] = text
    return attrs


def _text(value: Any) -> str:
    return value if type(value) is str else tag_value(value)


def _number(
        point: NumberDataPoint, value: Any, source: Mapping[str, Any] | None, start: int, end: int,
        attrs: Mapping[str, Any]
) -> None:  # fmt: skip
    point.start_time_unix_nano = start
    point.time_unix_nano = end
    original = source.get("value") if source else None
    if isinstance(original, int) and not isinstance(original, bool) and float(original) == value:
        point.as_int = original  # the exact integer the source sent (a float holds only 53 bits)
    elif isinstance(original, int) and isinstance(value, float) and value.is_integer():
        point.as_int = int(value)  # an integer series' increase (a cumulative sum's delta)
    elif isinstance(value, int) and not isinstance(value, bool):
        point.as_int = value
    else:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError(f"value {number!r} is not finite")
        point.as_double = number
    if source and source.get("flags"):
        point.flags = int(source["flags"])
    set_attributes(point.attributes, attrs)


def _distribution(metric: OtlpMetric, value: Any, start: int, end: int, attrs: Mapping[str, Any]) -> None:
    if isinstance(value, Mapping) and "scale" in value:
        data = metric.exponential_histogram
        data.aggregation_temporality = DELTA
        ep = data.data_points.add()
        ep.start_time_unix_nano, ep.time_unix_nano = start, end
        ep.scale = int(value["scale"])
        ep.count = int(value["count"])
        ep.zero_count = int(value.get("zero_count") or 0)
        ep.zero_threshold = float(value.get("zero_threshold") or 0.0)
        for side in ("positive", "negative"):
            buckets = value.get(side) or {}
            target = getattr(ep, side)
            target.offset = int(buckets.get("offset") or 0)
            target.bucket_counts.extend(int(c) for c in buckets.get("bucket_counts") or ())
        _extremes(ep, value)
        set_attributes(ep.attributes, attrs)
        return
    data = metric.histogram
    data.aggregation_temporality = DELTA
    point: HistogramDataPoint = data.data_points.add()
    point.start_time_unix_nano, point.time_unix_nano = start, end
    if isinstance(value, Mapping) and "bucket_counts" in value:
        point.explicit_bounds.extend(float(b) for b in value.get("bounds") or ())
        point.bucket_counts.extend(int(c) for c in value["bucket_counts"])
        point.count = int(value.get("count", sum(point.bucket_counts)))
        _extremes(point, value)
    elif isinstance(value, Mapping) and "bounds" not in value and "values" not in value and "count" in value:
        point.count = int(value["count"])  # count (and sum) only: no buckets
        _extremes(point, value)
    else:
        _values_histogram(point, value)
    set_attributes(point.attributes, attrs)


def _values_histogram(point: HistogramDataPoint, value: Any) -> None:
    """Raw values as a histogram with one bound per distinct value: each bucket holds one value, exactly."""
    if isinstance(value, Mapping):
        values, counts = list(value.get("values") or ()), list(value.get("counts") or ())
        if len(counts) != len(values):
            raise ValueError(f"{len(values)} values but {len(counts)} counts")
    elif isinstance(value, (list, tuple)):
        values, counts = list(value), [1] * len(value)
    else:
        raise ValueError(f"a distribution value must be a list or a mapping, not {type(value).__name__}")
    tally: Counter[float] = Counter()
    for v, c in zip(values, counts, strict=True):
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"value {v!r} is not finite")
        if c < 0 or c != int(c):
            raise ValueError(f"count {c!r} is not a whole number (OTLP counts are integers)")
        tally[v] += int(c)
    bounds = sorted(tally)
    point.explicit_bounds.extend(bounds)
    point.bucket_counts.extend([tally[b] for b in bounds] + [0])
    point.count = sum(tally.values())
    if bounds:
        point.sum = math.fsum(b * tally[b] for b in bounds)
        point.min, point.max = bounds[0], bounds[-1]
    if isinstance(value, Mapping):
        _extremes(point, value)


def _extremes(point: Any, value: Mapping[str, Any]) -> None:
    for key in ("sum", "min", "max"):
        if value.get(key) is not None:
            setattr(point, key, float(value[key]))
