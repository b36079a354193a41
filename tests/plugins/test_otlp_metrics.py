"""OTLP metrics → Metric records: requests built by the real OpenTelemetry SDK and its OTLP encoder."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

from collector.events import Metric
from collector_plugins.common.metrics.distribution import as_distribution
from collector_plugins.common.otlp.metrics import OtlpMetricsConverter, _subtract_number
from collector_plugins.common.otlp.metrics_state import PRIMED, REFUSED, SeriesState
from tests.plugins.otlp_sdk import Sdk

NOW = 1_700_000_000.0


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    s = Sdk()
    yield s
    s.close()


@pytest.fixture
def delta_sdk() -> Iterator[Sdk]:
    s = Sdk(delta=True, exponential=["exp"])
    yield s
    s.close()


def by_name(records: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Metric]:
    out = {}
    for r in records:
        key = (r.name, tuple(sorted(r.tags.items())))
        assert key not in out, f"two records for {key}"
        out[key] = r
    return out


def one(records: list[Metric], name: str, **tags: str) -> Metric:
    found = [r for r in records if r.name == name and all(r.tags.get(k) == v for k, v in tags.items())]
    assert len(found) == 1, (name, tags, records)
    return found[0]


def test_cumulative_counter_first_point_primes_then_increases_exactly(sdk: Sdk) -> None:
    conv = OtlpMetricsConverter()
    counter = sdk.meter.create_counter("http.requests", unit="{request}", description="Requests served")
    counter.add(5, {"route": "/a"})
    first = conv.convert(sdk.export(), NOW)
    assert first.records == [] and first.rejected == 0
    counter.add(7, {"route": "/a"})
    counter.add(2, {"route": "/b"})  # a new series: primes
    second = sdk.export()
    out = conv.convert(second, NOW)
    assert out.rejected == 0
    rec = one(out.records, "http.requests", route="/a")
    assert (rec.type, rec.value, rec.unit) == ("counter", 7.0, None)
    assert rec.tags == {"service.name": "shop", "route": "/a"}
    point = second.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0]
    assert rec.timestamp == point.time_unix_nano / 1e9
    assert rec.interval > 0
    # The exact original point is kept for re-exposure: the cumulative value, temporality, start time
    src = rec.source
    assert src is not None
    assert src["format"] == "otlp" and src["type"] == "sum" and src["temporality"] == "cumulative"
    assert src["monotonic"] is True and src["value"] == 12 and isinstance(src["value"], int)
    assert src["start_time_unix_nano"] == point.start_time_unix_nano
    assert src["description"] == "Requests served" and src["unit"] == "{request}"
    assert src["resource"]["service.name"] == "shop" and src["scope"] == {"name": "test.meter", "version": "1.2"}
    assert src["attributes"] == {"route": "/a"}
    # the same export again (a retry) is a duplicate: nothing counted twice
    assert conv.convert(second, NOW).records == []
    counter.add(1, {"route": "/b"})
    third = conv.convert(sdk.export(), NOW)
    assert [(r.tags["route"], r.value) for r in third.records if r.name == "http.requests"] == [
        ("/a", 0.0),
        ("/b", 1.0),
    ]


def test_delta_points_are_sent_as_they_are(delta_sdk: Sdk) -> None:
    conv = OtlpMetricsConverter()
    counter = delta_sdk.meter.create_counter("jobs", unit="s")
    updown = delta_sdk.meter.create_up_down_counter("queue.change")
    counter.add(1.5)
    updown.add(-3)
    out = conv.convert(delta_sdk.export(), NOW)
    assert (one(out.records, "jobs").type, one(out.records, "jobs").value) == ("counter", 1.5)
    assert one(out.records, "jobs").unit == "Seconds"
    # non-monotonic delta: the signed change
    assert (one(out.records, "queue.change").type, one(out.records, "queue.change").value) == ("counter", -3.0)
    counter.add(2)
    out = conv.convert(delta_sdk.export(), NOW)
    rec = one(out.records, "jobs")
    assert rec.value == 2.0 and rec.source is not None and rec.source["temporality"] == "delta"
    assert rec.interval == pytest.approx((rec.source["time_unix_nano"] - rec.source["start_time_unix_nano"]) / 1e9)


def test_up_down_counters_and_observable_gauges_are_gauges(sdk: Sdk) -> None:
    conv = OtlpMetricsConverter()
    updown = sdk.meter.create_up_down_counter("queue.depth")
    temps = {"a": 21.5, "b": -4.25}

    def observe(options: CallbackOptions) -> list[Observation]:
        return [Observation(v, {"room": k}) for k, v in temps.items()]

    sdk.meter.create_observable_gauge("temperature", [observe], unit="Cel")
    updown.add(5)
    updown.add(-2)
    out = conv.convert(sdk.export(), NOW)
    depth = one(out.records, "queue.depth")
    assert (depth.type, depth.value) == ("gauge", 3.0)
    assert one(out.records, "temperature", room="a").value == 21.5
    assert one(out.records, "temperature", room="b").value == -4.25
    assert one(out.records, "temperature", room="b").unit is None  # no CloudWatch unit for Cel
    updown.add(-10)
    assert one(conv.convert(sdk.export(), NOW).records, "queue.depth").value == -7.0


def test_cumulative_histogram_becomes_bucket_increases(sdk: Sdk) -> None:
    conv = OtlpMetricsConverter()
    hist = sdk.meter.create_histogram("latency", unit="ms")
    for v in (3.0, 12.0, 700.0):
        hist.record(v)
    assert conv.convert(sdk.export(), NOW).records == []
    for v in (1.0, 12.5, 20.0, 20000.0):
        hist.record(v)
    rec = one(conv.convert(sdk.export(), NOW).records, "latency")
    assert rec.type == "distribution" and rec.unit == "Milliseconds"
    value = rec.value
    assert value["bounds"][:4] == [0.0, 5.0, 10.0, 25.0]
    counts = dict(zip([*value["bounds"], math.inf], value["bucket_counts"], strict=True))
    assert counts[5.0] == 1 and counts[25.0] == 2 and counts[math.inf] == 1 and sum(counts.values()) == 4
    assert value["count"] == 4 and value["sum"] == 1.0 + 12.5 + 20.0 + 20000.0
    # a new minimum and maximum were reached in this interval, so both are known exactly
    assert value["min"] == 1.0 and value["max"] == 20000.0
    assert rec.source is not None and rec.source["count"] == 7 and sum(rec.source["bucket_counts"]) == 7
    hist.record(13.0)
    rec = one(conv.convert(sdk.export(), NOW).records, "latency")
    # no new extreme: the interval's min/max are not known, the buckets bound them
    assert rec.value["count"] == 1 and rec.value["sum"] == 13.0 and "min" not in rec.value
    dist = as_distribution(rec.value)
    assert dist.count == 1 and dist.sum == 13.0 and 10.0 <= dist.min <= 25.0


def test_delta_histogram_keeps_exact_statistics(delta_sdk: Sdk) -> None:
    conv = OtlpMetricsConverter()
    hist = delta_sdk.meter.create_histogram("size", unit="By")
    values = [0.5, 7.0, 7.0, 80.0, 12345.0]
    for v in values:
        hist.record(v, {"op": "put"})
    rec = one(conv.convert(delta_sdk.export(), NOW).records, "size")
    assert rec.unit == "Bytes"
    dist = as_distribution(rec.value)
    assert (dist.count, dist.sum, dist.min, dist.max) == (5, sum(values), 0.5, 12345.0)
    # the open-ended buckets are represented by the exact extremes, every value within [min, max]
    assert dist.quantile(1.0) == 12345.0 and dist.quantile(0.0) == 0.5


def test_exponential_histogram_keeps_its_buckets_exactly(delta_sdk: Sdk) -> None:
    conv = OtlpMetricsConverter()
    hist = delta_sdk.meter.create_histogram("exp", unit="s")
    values = [0.0, 0.001, 0.0125, 0.25, 0.25, 3.0, 42.0]
    for v in values:
        hist.record(v)
    rec = one(conv.convert(delta_sdk.export(), NOW).records, "exp")
    value = rec.value
    assert value["zero_count"] == 1 and value["count"] == len(values)
    assert sum(value["positive"]["bucket_counts"]) == len(values) - 1
    dist = as_distribution(value)
    assert (dist.count, dist.sum, dist.min, dist.max) == (len(values), sum(values), 0.0, 42.0)
    base = 2 ** (2 ** -value["scale"])
    for q, expected in ((0.5, 0.25), (0.4, 0.0125)):  # every percentile within its bucket's relative width
        assert dist.quantile(q) == pytest.approx(expected, rel=base - 1)


def test_cumulative_exponential_histogram_subtracts_across_scale_changes() -> None:
    sdk = Sdk(exponential=["exp"], max_size=4)
    try:
        conv = OtlpMetricsConverter()
        hist = sdk.meter.create_histogram("exp")
        hist.record(1.0)
        hist.record(1.1)
        assert conv.convert(sdk.export(), NOW).records == []
        for v in (1.05, 100.0, 1000.0):  # forces the SDK to a lower scale (only 4 buckets)
            hist.record(v)
        request = sdk.export()
        point = request.resource_metrics[0].scope_metrics[0].metrics[0].exponential_histogram.data_points[0]
        rec = one(conv.convert(request, NOW).records, "exp")
        assert rec.value["scale"] <= point.scale and sum(rec.value["positive"]["bucket_counts"]) == 3
        dist = as_distribution(rec.value)
        assert dist.count == 3 and dist.sum == pytest.approx(1101.05) and dist.max == 1000.0
    finally:
        sdk.close()


def request_of(*metrics: pb.Metric, resource: dict[str, str] | None = None) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    for k, v in (resource or {"service.name": "svc"}).items():
        kv = rm.resource.attributes.add()
        kv.key, kv.value.string_value = k, v
    sm = rm.scope_metrics.add()
    sm.scope.name = "manual"
    sm.metrics.extend(metrics)
    return req


def number_metric(name: str, *values: float, kind: str = "gauge", cumulative: bool = True, start: int = 1) -> pb.Metric:
    m = pb.Metric(name=name)
    data: Any = getattr(m, kind)
    if kind == "sum":
        data.is_monotonic = True
        data.aggregation_temporality = 2 if cumulative else 1
    for i, v in enumerate(values):
        p = data.data_points.add(start_time_unix_nano=start, time_unix_nano=int((NOW + i) * 1e9))
        p.as_double = v
        kv = p.attributes.add()
        kv.key, kv.value.string_value = "i", str(i)
    return m


def test_summary_becomes_sum_count_and_quantile_gauges() -> None:
    conv = OtlpMetricsConverter()

    def summary(count: int, total: float, t: float) -> ExportMetricsServiceRequest:
        m = pb.Metric(name="rpc_seconds", unit="s")
        p = m.summary.data_points.add(start_time_unix_nano=10, time_unix_nano=int(t * 1e9), count=count, sum=total)
        for q, v in ((0.0, 0.1), (0.5, 0.2), (0.99, 0.9), (1.0, float("nan"))):
            p.quantile_values.add(quantile=q, value=v)
        return request_of(m)

    first = conv.convert(summary(10, 3.0, NOW), NOW)
    assert {(r.name, r.tags.get("quantile"), r.value) for r in first.records} == {
        ("rpc_seconds", "0", 0.1),
        ("rpc_seconds", "0.5", 0.2),
        ("rpc_seconds", "0.99", 0.9),
    }
    out = conv.convert(summary(14, 4.5, NOW + 60), NOW)
    assert one(out.records, "rpc_seconds_count").value == 4.0
    assert one(out.records, "rpc_seconds_sum").value == 1.5 and one(out.records, "rpc_seconds_sum").unit == "Seconds"
    assert one(out.records, "rpc_seconds_sum").interval == 60.0


def test_resets_start_over() -> None:
    conv = OtlpMetricsConverter()
    t0 = int(NOW * 1e9)

    def point(value: float, start: int, t: int) -> ExportMetricsServiceRequest:
        m = pb.Metric(name="c")
        m.sum.is_monotonic, m.sum.aggregation_temporality = True, 2
        m.sum.data_points.add(start_time_unix_nano=start, time_unix_nano=t, as_int=int(value))
        return request_of(m)

    assert conv.convert(point(100, t0, t0 + 10**10), NOW).records == []
    assert [r.value for r in conv.convert(point(130, t0, t0 + 2 * 10**10), NOW).records] == [30.0]
    # the process restarted after our last point: everything the new counter counted is new
    out = conv.convert(point(4, t0 + 3 * 10**10, t0 + 4 * 10**10), NOW).records
    assert [(r.value, r.interval) for r in out] == [(4.0, 10.0)]
    # the value went down without a new start time: it only primes again
    assert conv.convert(point(1, t0 + 3 * 10**10, t0 + 5 * 10**10), NOW).records == []
    assert [r.value for r in conv.convert(point(6, t0 + 3 * 10**10, t0 + 6 * 10**10), NOW).records] == [5.0]
    assert conv.counters()["otlp_resets"] == 2


def test_bad_points_are_rejected_one_by_one() -> None:
    conv = OtlpMetricsConverter()
    good = number_metric("ok", 1.0, 2.0)
    nan = number_metric("bad.nan", 1.0, math.nan, math.inf)
    hist = pb.Metric(name="h")
    hist.histogram.aggregation_temporality = 1
    hist.histogram.data_points.add(explicit_bounds=[1.0, 2.0], bucket_counts=[1, 1], count=2)  # counts != bounds+1
    hist.histogram.data_points.add(explicit_bounds=[1.0, 2.0], bucket_counts=[1, 1, 1], count=4)  # count != sum
    hist.histogram.data_points.add(explicit_bounds=[2.0, 1.0], bucket_counts=[1, 1, 1], count=3)  # not increasing
    hist.histogram.data_points.add(explicit_bounds=[1.0, 2.0], bucket_counts=[1, 0, 1], count=2, sum=7.0)  # good
    exp = pb.Metric(name="e")
    exp.exponential_histogram.aggregation_temporality = 1
    exp.exponential_histogram.data_points.add(scale=3, count=5, zero_count=1)  # count != buckets
    exp.exponential_histogram.data_points.add(scale=99, count=0)  # no such scale
    untimed = pb.Metric(name="t")
    untimed.sum.aggregation_temporality, untimed.sum.is_monotonic = 2, True
    untimed.sum.data_points.add(as_int=1)  # a cumulative point without its time
    unspecified = pb.Metric(name="u")
    unspecified.sum.data_points.add(as_int=1)  # temporality unspecified
    empty = pb.Metric(name="nothing")  # no data at all (an unknown type)
    out = conv.convert(request_of(good, nan, hist, exp, untimed, unspecified, empty), NOW)
    assert out.rejected == 2 + 3 + 2 + 1 + 1 + 1
    assert "bad.nan" in out.error_message and "not finite" in out.error_message
    assert sorted((r.name, r.tags.get("i")) for r in out.records) == [
        ("bad.nan", "0"),
        ("h", None),
        ("ok", "0"),
        ("ok", "1"),
    ]
    assert conv.drain_losses() == {"invalid_point": 10}
    assert conv.drain_losses() == {}


def test_series_state_is_bounded() -> None:
    conv = OtlpMetricsConverter(max_series=2)
    out = conv.convert(request_of(number_metric("c", 1.0, 2.0, 3.0, kind="sum")), NOW)
    assert out.rejected == 1 and "series limit" in out.error_message
    assert conv.drain_losses() == {"cardinality_limit": 1}
    # delta points and gauges need no state and are never refused
    out = conv.convert(request_of(number_metric("d", 1.0, 2.0, 3.0, kind="sum", cumulative=False)), NOW)
    assert out.rejected == 0 and len(out.records) == 3


def test_resource_attributes_to_tags() -> None:
    resource = {"service.name": "svc", "service.namespace": "shop", "host.name": "h1"}
    req = request_of(number_metric("g", 1.0), resource=resource)
    assert one(OtlpMetricsConverter().convert(req, NOW).records, "g").tags == {"service.name": "svc", "i": "0"}
    chosen = OtlpMetricsConverter(resource_to_tags=["service.namespace", "host.name", "absent"])
    assert one(chosen.convert(req, NOW).records, "g").tags == {"service.namespace": "shop", "host.name": "h1", "i": "0"}
    everything = OtlpMetricsConverter(resource_to_tags=None)
    assert one(everything.convert(req, NOW).records, "g").tags == {**resource, "i": "0"}


def test_attribute_values_become_tag_text_and_points_without_time_take_the_receive_time() -> None:
    m = pb.Metric(name="g")
    p = m.gauge.data_points.add(as_int=3)
    for key, setter in (("b", "bool_value"), ("n", "int_value"), ("f", "double_value")):
        kv = p.attributes.add()
        kv.key = key
        setattr(kv.value, setter, {"b": True, "n": 42, "f": 1.5}[key])
    kv = p.attributes.add()
    kv.key = "l"
    kv.value.array_value.values.add().string_value = "x"
    rec = one(OtlpMetricsConverter().convert(request_of(m), NOW).records, "g")
    assert rec.tags == {"service.name": "svc", "b": "true", "n": "42", "f": "1.5", "l": '["x"]'}
    assert rec.timestamp == NOW and rec.value == 3.0 and rec.source is not None and rec.source["value"] == 3


def test_no_recorded_value_points_are_skipped() -> None:
    m = number_metric("g", 1.0, 2.0)
    m.gauge.data_points[1].flags = 1
    conv = OtlpMetricsConverter()
    out = conv.convert(request_of(m), NOW)
    assert (
        [r.value for r in out.records] == [1.0] and out.rejected == 0 and conv.counters()["otlp_no_recorded_value"] == 1
    )


def test_real_time_timestamps() -> None:
    sdk = Sdk(delta=True)
    try:
        sdk.meter.create_counter("c").add(1)
        rec = OtlpMetricsConverter().convert(sdk.export(), 0.0).records[0]
        assert abs(rec.timestamp - time.time()) < 60
    finally:
        sdk.close()


def test_series_state_gives_an_idle_series_slot_to_a_new_one() -> None:
    clock = [0.0]
    state = SeriesState(max_series=1, idle_after=60.0, clock=lambda: clock[0])
    assert state.update("a", 1, 10, 5, _subtract_number)[0] == PRIMED
    clock[0] = 59.0
    assert state.update("b", 1, 10, 5, _subtract_number)[0] == REFUSED  # "a" was seen 59 s ago: it keeps its slot
    assert state.update("a", 1, 20, 8, _subtract_number) == ("delta", 3, 10)
    clock[0] = 59.0 + 60.0
    assert state.update("b", 1, 10, 5, _subtract_number)[0] == PRIMED  # idle for 60 s: "a" is forgotten
    assert (len(state), state.refused, state.expired) == (1, 1, 1)
    assert state.update("a", 1, 30, 9, _subtract_number)[0] == REFUSED  # "b" now holds the only slot


def test_too_many_exponential_buckets_are_merged_keeping_every_count() -> None:
    sdk = Sdk(delta=True, exponential=["exp"])
    try:
        hist = sdk.meter.create_histogram("exp")
        values = [1.001**i for i in range(0, 5000, 7)] + [-3.0, 0.0]
        for v in values:
            hist.record(abs(v))  # the SDK takes no negative histogram values
        request = sdk.export()
        sent = request.resource_metrics[0].scope_metrics[0].metrics[0].exponential_histogram.data_points[0]
        assert len(sent.positive.bucket_counts) > 100
        rec = one(OtlpMetricsConverter(max_buckets=16).convert(request, NOW).records, "exp")
        value = rec.value
        assert len(value["positive"]["bucket_counts"]) <= 16 and value["scale"] < sent.scale
        assert sum(value["positive"]["bucket_counts"]) == sum(sent.positive.bucket_counts)
        dist = as_distribution(value)
        assert (dist.count, dist.min, dist.max) == (len(values), 0.0, max(abs(v) for v in values))
        assert dist.sum == pytest.approx(math.fsum(abs(v) for v in values), rel=1e-12)
        # the source keeps the point as sent
        assert rec.source is not None and rec.source["scale"] == sent.scale
    finally:
        sdk.close()


def test_cumulative_exponential_buckets_subtract_across_moving_offsets() -> None:
    conv = OtlpMetricsConverter()

    def point(t: int, offset: int, counts: list[int], neg: list[int], zero: int) -> ExportMetricsServiceRequest:
        m = pb.Metric(name="e")
        m.exponential_histogram.aggregation_temporality = 2
        p = m.exponential_histogram.data_points.add(start_time_unix_nano=1, time_unix_nano=t, scale=1)
        p.positive.offset = offset
        p.positive.bucket_counts.extend(counts)
        p.negative.offset = 2
        p.negative.bucket_counts.extend(neg)
        p.zero_count = zero
        p.count = sum(counts) + sum(neg) + zero
        return request_of(m)

    assert conv.convert(point(10, 4, [1, 2], [1], 1), NOW).records == []
    # a lower bucket filled (offset 2) and bucket 5 grew; the negative side and the zero bucket did not change
    (rec,) = conv.convert(point(20, 2, [3, 0, 1, 2], [1], 1), NOW).records
    assert rec.value["positive"] == {"offset": 2, "bucket_counts": [3]}
    assert rec.value["negative"] == {"offset": 0, "bucket_counts": []}
    assert (rec.value["zero_count"], rec.value["count"]) == (0, 3)
    # a bucket count that went down is a reset: nothing sent, the point primes again
    assert conv.convert(point(30, 2, [3, 0, 0, 2], [1], 1), NOW).records == []
