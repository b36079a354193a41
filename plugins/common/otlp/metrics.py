"""OTLP metrics (an ExportMetricsServiceRequest) → `Metric` records, exactly; see docs/metrics.md "OTLP metrics".

    converter = OtlpMetricsConverter(max_series=10_000, resource_to_tags=("service.name",))
    conversion = converter.convert(request, received=time.time())   # Conversion(records, rejected, error_message)
    converter.drain_losses()   # {"invalid_point": n, "cardinality_limit": n}: for the loss ledger

The mapping, per OTLP type:

- Gauge → `gauge`.
- Sum, monotonic → `counter`: a delta point's value; a cumulative point's increase since the previous point of
  its series (metrics_state.py: the first point primes, resets start over). Non-monotonic cumulative → `gauge`
  (the current total, what an up-down counter means); non-monotonic delta → `counter` holding the signed change.
- Histogram → `distribution` `{bounds, bucket_counts, count, sum, min, max}` (cumulative: the increase of every
  bucket, of count and of sum; min/max only where they are known for the interval).
- ExponentialHistogram → `distribution` `{scale, zero_count, zero_threshold, positive, negative, count, sum,
  min, max}` (the buckets exactly; more than `max_buckets` buckets are merged by lowering the scale, which
  keeps every count).
- Summary → counters `<name>_sum` and `<name>_count` (increases, as the `prometheus` input does) and one
  `gauge` `<name>` per quantile with a `quantile` tag.

Tags are the point's attributes over the resource attributes named in `resource_to_tags` (None: all of
them); values that are not strings are written as JSON-ish text (`true`, `3`, `["a","b"]`). The unit maps from
UCUM to CloudWatch's where one means the same (`ms` → `Milliseconds`); `interval` is the point's
start→time span for deltas, the time since the previous point for cumulative series; `timestamp` is the
point's time. Every record keeps the OTLP point as received under `Metric.source` (`format: otlp`, the type,
temporality, start/time in nanoseconds, the original value or buckets, attributes, resource and scope) for
`prometheus_exporter` and the `otlp` output. Exemplars are dropped.

A point that breaks the OTLP data model (NaN or infinite values, buckets not matching bounds or count,
unspecified temporality, a metric without data) is rejected alone: counted in `Conversion.rejected`, the first
reason in `error_message`, never the whole request. Points flagged "no recorded value" are skipped silently
(they mark a series' end, they are not data).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    NumberDataPoint,
    SummaryDataPoint,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Metric as OtlpMetric,
)

from collector.events import Metric
from collector_plugins.common.metrics.units import from_ucum
from collector_plugins.common.otlp.conversion import Conversion
from collector_plugins.common.otlp.metrics_histograms import (
    InvalidPoint,
    exponential_point,
    exponential_value,
    finite,
    histogram_point,
    histogram_value,
    subtract_exponential,
    subtract_histogram,
)
from collector_plugins.common.otlp.metrics_state import PRIMED, REFUSED, SeriesState
from collector_plugins.common.otlp.values import attributes

DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
_TEMPORALITY = {DELTA: "delta", CUMULATIVE: "cumulative"}
_NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
_NANOS = 1e9
DEFAULT_RESOURCE_TAGS = ("service.name",)


class OtlpMetricsConverter:
    """Converts export requests; keeps the cumulative state between them (one instance per input)."""

    def __init__(
        self,
        max_series: int = 10_000,
        resource_to_tags: Iterable[str] | None = DEFAULT_RESOURCE_TAGS,
        max_buckets: int = 320,
        idle_after: float = 3600.0,
    ) -> None:
        self.resource_to_tags = None if resource_to_tags is None else tuple(resource_to_tags)
        self.max_buckets = max_buckets
        """An exponential histogram with more buckets is downscaled to this many (OTel SDKs default to 160)."""
        self.state = SeriesState(max_series, idle_after)
        self._converters: dict[str, Callable[..., list[Metric]]] = {
            "gauge": self._gauge,
            "sum": self._sum,
            "histogram": self._histogram,
            "exponential_histogram": self._exponential_histogram,
            "summary": self._summary,
        }
        self.losses: Counter[str] = Counter()
        self.points = 0
        self.skipped = 0
        """Points flagged "no recorded value"."""

    def drain_losses(self) -> dict[str, int]:
        """Points lost since the last call, by loss-ledger reason (`invalid_point`, `cardinality_limit`)."""
        out = dict(self.losses)
        self.losses.clear()
        return out

    def counters(self) -> dict[str, float]:
        return {
            "otlp_points": self.points,
            "otlp_series": len(self.state),
            "otlp_resets": self.state.resets,
            "otlp_no_recorded_value": self.skipped,
        }

    # -- request walk --------------------------------------------------------------------------------

    def convert(self, request: ExportMetricsServiceRequest, received: float) -> Conversion:
        out = Conversion()
        for resource_metrics in request.resource_metrics:
            resource = attributes(resource_metrics.resource.attributes)
            resource_tags = self._resource_tags(resource)
            resource_key = _freeze(resource)
            for scope_metrics in resource_metrics.scope_metrics:
                scope_msg = scope_metrics.scope
                scope: dict[str, Any] = {"name": scope_msg.name}
                if scope_msg.version:
                    scope["version"] = scope_msg.version
                if len(scope_msg.attributes):
                    scope["attributes"] = attributes(scope_msg.attributes)
                context = _Context(resource, resource_tags, (resource_key, scope_msg.name, scope_msg.version), scope)
                for metric in scope_metrics.metrics:
                    self._metric(out, metric, context, received)
        return out

    def _resource_tags(self, resource: dict[str, Any]) -> dict[str, str]:
        names = self.resource_to_tags
        if names is None:
            return {k: tag_value(v) for k, v in resource.items()}
        return {k: tag_value(resource[k]) for k in names if k in resource}

    def _metric(self, out: Conversion, metric: OtlpMetric, context: _Context, received: float) -> None:
        case = metric.WhichOneof("data")
        convert: Callable[..., list[Metric]] | None = self._converters.get(case) if case else None
        if case is None or convert is None:
            self._reject(out, 1, f"metric {metric.name!r} has no data (unknown or missing type)")
            return
        data = getattr(metric, case)
        points: Sequence[Any] = data.data_points
        if not metric.name:
            self._reject(out, max(len(points), 1), "a metric without a name")
            return
        unit = from_ucum(metric.unit)
        for point in points:
            self.points += 1
            if point.flags & _NO_RECORDED_VALUE:
                self.skipped += 1
                continue
            try:
                records = convert(metric, data, point, context, unit, received)
            except (InvalidPoint, OverflowError) as exc:
                self._reject(out, 1, f"metric {metric.name!r}: {exc}")
                continue
            except _Refused:
                self.losses["cardinality_limit"] += 1
                out.reject(1, f"metric {metric.name!r}: series limit reached ({self.state.max_series} series)")
                continue
            out.records.extend(records)

    def _reject(self, out: Conversion, count: int, reason: str) -> None:
        self.losses["invalid_point"] += count
        out.reject(count, reason)

    # -- one point per type ------------------------------------------------------------------------

    def _gauge(
        self, metric: OtlpMetric, data: Any, point: NumberDataPoint, ctx: _Context, unit: str | None, received: float
    ) -> list[Metric]:
        value = _number_value(point)
        attrs = attributes(point.attributes)
        source = ctx.source(metric, "gauge", point, attrs, {"value": value})
        return [Metric(metric.name, "gauge", float(value), ctx.tags(attrs), _time(point, received), unit, 0.0, source)]

    def _sum(
        self, metric: OtlpMetric, data: Any, point: NumberDataPoint, ctx: _Context, unit: str | None, received: float
    ) -> list[Metric]:
        value = _number_value(point)
        temporality = _temporality(data)
        monotonic = bool(data.is_monotonic)
        if monotonic and value < 0:
            raise InvalidPoint("a monotonic sum cannot be negative")
        attrs = attributes(point.attributes)
        extra = {"temporality": temporality, "monotonic": monotonic, "value": value}
        source = ctx.source(metric, "sum", point, attrs, extra)
        tags = ctx.tags(attrs)
        stamp = _time(point, received)
        if temporality == "delta":
            interval = _span(point.start_time_unix_nano, point.time_unix_nano)
            return [Metric(metric.name, "counter", float(value), tags, stamp, unit, interval, source)]
        if not monotonic:
            return [Metric(metric.name, "gauge", float(value), tags, stamp, unit, 0.0, source)]
        key = (metric.name, "sum", ctx.key, _freeze(attrs))
        found = self._delta(key, point, value, _subtract_number)
        if found is None:
            return []
        increase, since = found
        interval = _span(since, point.time_unix_nano)
        return [Metric(metric.name, "counter", float(increase), tags, stamp, unit, interval, source)]

    def _histogram(
        self, metric: OtlpMetric, data: Any, point: HistogramDataPoint, ctx: _Context, unit: str | None, received: float
    ) -> list[Metric]:
        temporality = _temporality(data)
        hist = histogram_point(point)
        attrs = attributes(point.attributes)
        source = ctx.source(metric, "histogram", point, attrs, {"temporality": temporality, **hist})
        stamp = _time(point, received)
        if temporality == "delta":
            value, interval = histogram_value(hist), _span(point.start_time_unix_nano, point.time_unix_nano)
        else:
            key = (metric.name, "histogram", ctx.key, _freeze(attrs))
            found = self._delta(key, point, hist, subtract_histogram)
            if found is None:
                return []
            value, interval = histogram_value(found[0]), _span(found[1], point.time_unix_nano)
        return [Metric(metric.name, "distribution", value, ctx.tags(attrs), stamp, unit, interval, source)]

    def _exponential_histogram(
        self,
        metric: OtlpMetric,
        data: Any,
        point: ExponentialHistogramDataPoint,
        ctx: _Context,
        unit: str | None,
        received: float,
    ) -> list[Metric]:
        temporality = _temporality(data)
        hist = exponential_point(point)
        attrs = attributes(point.attributes)
        source = ctx.source(metric, "exponential_histogram", point, attrs, {"temporality": temporality, **hist})
        stamp = _time(point, received)
        if temporality == "delta":
            delta, interval = hist, _span(point.start_time_unix_nano, point.time_unix_nano)
        else:
            key = (metric.name, "exponential_histogram", ctx.key, _freeze(attrs))
            found = self._delta(key, point, hist, subtract_exponential)
            if found is None:
                return []
            delta, interval = found[0], _span(found[1], point.time_unix_nano)
        value = exponential_value(delta, self.max_buckets)
        return [Metric(metric.name, "distribution", value, ctx.tags(attrs), stamp, unit, interval, source)]

    def _summary(
        self, metric: OtlpMetric, data: Any, point: SummaryDataPoint, ctx: _Context, unit: str | None, received: float
    ) -> list[Metric]:
        total = finite(point.sum, "sum")
        count = point.count
        quantiles: list[tuple[float, float]] = []
        for q in point.quantile_values:
            if not 0.0 <= q.quantile <= 1.0:
                raise InvalidPoint(f"quantile {q.quantile!r} is outside 0..1")
            if math.isinf(q.value):
                raise InvalidPoint("a quantile value is infinite")
            quantiles.append((q.quantile, q.value))  # NaN: no observation in the window (kept in source only)
        attrs = attributes(point.attributes)
        extra = {"count": count, "sum": total, "quantiles": [list(q) for q in quantiles]}
        source = ctx.source(metric, "summary", point, attrs, extra)
        tags = ctx.tags(attrs)
        stamp = _time(point, received)
        key = (metric.name, "summary", ctx.key, _freeze(attrs))
        found = self._delta(key, point, (count, total), _subtract_summary)
        out = []
        if found is not None:
            (d_count, d_sum), since = found
            interval = _span(since, point.time_unix_nano)
            out.append(Metric(metric.name + "_count", "counter", float(d_count), tags, stamp, None, interval, source))
            out.append(Metric(metric.name + "_sum", "counter", float(d_sum), tags, stamp, unit, interval, source))
        for q, v in quantiles:
            if not math.isnan(v):
                q_tags = {**tags, "quantile": _quantile_label(q)}
                out.append(Metric(metric.name, "gauge", v, q_tags, stamp, unit, 0.0, source))
        return out

    def _delta(
        self, key: Any, point: Any, value: Any, subtract: Callable[[Any, Any], Any | None]
    ) -> tuple[Any, int] | None:
        """(increase, since-nanos) for a cumulative point, None when it only primes or repeats; _Refused if full."""
        if not point.time_unix_nano:  # required by OTLP; without it every later point would look like a repeat
            raise InvalidPoint("a cumulative point without time_unix_nano")
        status, increase, since = self.state.update(
            key, point.start_time_unix_nano, point.time_unix_nano, value, subtract
        )
        if status == REFUSED:
            raise _Refused
        if status == PRIMED or increase is None:
            return None
        return increase, since


class _Refused(Exception):
    """The series is new and the state is full."""


class _Context:
    """What the points of one ScopeMetrics share: resource, scope, their tags and their series-key part."""

    __slots__ = ("key", "resource", "resource_tags", "scope")

    def __init__(self, resource: dict[str, Any], resource_tags: dict[str, str], key: Any, scope: dict[str, Any]):
        self.resource = resource
        self.resource_tags = resource_tags
        self.key = key
        self.scope = scope

    def tags(self, attrs: dict[str, Any]) -> dict[str, str]:
        tags = dict(self.resource_tags)
        for k, v in attrs.items():
            tags[k] = v if type(v) is str else tag_value(v)
        return tags

    def source(self, metric: OtlpMetric, kind: str, point: Any, attrs: dict[str, Any], extra: dict[str, Any]):  # type: ignore[no-untyped-def]
        src: dict[str, Any] = {
            "format": "otlp",
            "type": kind,
            "name": metric.name,
            "start_time_unix_nano": point.start_time_unix_nano,
            "time_unix_nano": point.time_unix_nano,
        }
        if metric.description:
            src["description"] = metric.description
        if metric.unit:
            src["unit"] = metric.unit
        src.update(extra)
        if attrs:
            src["attributes"] = attrs
        if point.flags:
            src["flags"] = point.flags
        src["resource"] = self.resource  # shared by the records of a ResourceMetrics (never mutated)
        src["scope"] = self.scope
        return src


# -- values ---------------------------------------------------------------------------------------


def tag_value(value: Any) -> str:
    """A tag (dimension) value for an attribute value: strings as they are, the rest as JSON text."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if value is None:
        return ""
    try:
        return orjson.dumps(value, default=_jsonable).decode()
    except TypeError:  # an integer beyond 64 bits, a NaN inside a list: still one readable text
        return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError


def _freeze(attrs: dict[str, Any]) -> Any:
    """A hashable identity of an attribute dict (a series key part)."""
    items = tuple(sorted(attrs.items()))
    try:
        hash(items)
    except TypeError:  # lists or dicts among the values
        return repr(items)
    return items


def _time(point: Any, received: float) -> float:
    return point.time_unix_nano / _NANOS if point.time_unix_nano else received


def _span(start: int, end: int) -> float:
    return (end - start) / _NANOS if start and end > start else 0.0


def _temporality(data: Any) -> str:
    temporality = _TEMPORALITY.get(data.aggregation_temporality)
    if temporality is None:
        raise InvalidPoint("aggregation temporality is unspecified")
    return temporality


def _number_value(point: NumberDataPoint) -> int | float:
    case = point.WhichOneof("value")
    if case == "as_int":
        return point.as_int
    if case == "as_double":
        return finite(point.as_double, "value")
    raise InvalidPoint("a number point without a value")


def _quantile_label(q: float) -> str:
    return str(int(q)) if q.is_integer() else repr(q)


def _subtract_number(current: int | float, previous: int | float | None) -> int | float | None:
    if previous is None:
        return current
    return None if current < previous else current - previous


def _subtract_summary(current: tuple[int, float], previous: tuple[int, float] | None) -> tuple[int, float] | None:
    if previous is None:
        return current
    if current[0] < previous[0]:
        return None
    return current[0] - previous[0], current[1] - previous[1]
