"""PutMetricData datums and requests: every API limit held, at the limit and one over (moto enforces none)."""

from __future__ import annotations

import datetime
import math
import urllib.parse
from typing import Any

import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.serialize import create_serializer
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.events import Metric
from collector_plugins.common.cloudwatch_metrics.datums import (
    DatumBuilder,
    DatumOptions,
    InvalidRecord,
    estimate,
    pack,
    request_overhead,
)
from collector_plugins.common.cloudwatch_metrics.limits import (
    LIMITS,
    MAX_DATUMS_PER_REQUEST,
    MAX_DIMENSIONS,
    MAX_REQUEST_BYTES,
    MAX_VALUES_PER_DATUM,
)
from collector_plugins.common.metrics.distribution import Distribution

NOW = 1_764_150_000.0


def build(metric: Metric, **options: Any) -> tuple[str, list[dict[str, Any]]]:
    return DatumBuilder(DatumOptions(namespace=options.pop("namespace", "App"), **options)).datums(metric, NOW)


def reason(metric: Metric, **options: Any) -> str:
    with pytest.raises(InvalidRecord) as info:
        build(metric, **options)
    return info.value.reason


def test_limits_are_declared_with_their_source() -> None:
    assert LIMITS.max_events == MAX_DATUMS_PER_REQUEST and MAX_DATUMS_PER_REQUEST.value == 1000
    assert LIMITS.max_bytes == MAX_REQUEST_BYTES and MAX_REQUEST_BYTES.value == 1_000_000
    for limit in (MAX_DATUMS_PER_REQUEST, MAX_REQUEST_BYTES, MAX_VALUES_PER_DATUM, MAX_DIMENSIONS):
        assert limit.source.startswith("https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/")
        assert limit.checked == "2026-11-26"
    assert (MAX_VALUES_PER_DATUM.value, MAX_DIMENSIONS.value) == (150, 30)


def test_each_type() -> None:
    ts = NOW - 60
    stamp = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    ns, (counter,) = build(Metric("req", "counter", 7.0, {"route": "/a"}, ts, "Count", 60.0))
    assert ns == "App"
    assert counter == {
        "MetricName": "req",
        "Timestamp": stamp,
        "Dimensions": [{"Name": "route", "Value": "/a"}],
        "Unit": "Count",
        "Value": 7.0,
    }
    _, (gauge,) = build(Metric("depth", "gauge", 3, {}, ts))
    assert gauge["Value"] == 3.0 and "Dimensions" not in gauge and "Unit" not in gauge
    _, (members,) = build(Metric("users", "set", ["a", "b", "c"], {}, ts))
    assert (members["Value"], members["Unit"]) == (3.0, "Count")
    value = {"values": [1.0, 2.0], "counts": [3.0, 1.0], "sum": 5.0, "count": 4.0, "min": 1.0, "max": 2.0}
    _, (dist,) = build(Metric("lat", "distribution", value, {}, ts, "Milliseconds"))
    assert (dist["Values"], dist["Counts"], dist["Unit"]) == ([1.0, 2.0], [3.0, 1.0], "Milliseconds")
    # With the values, their statistic set (the CloudWatch agent sends both in one datum; the API takes it).
    assert dist["StatisticValues"] == {"SampleCount": 4.0, "Sum": 5.0, "Minimum": 1.0, "Maximum": 2.0}
    _, (stats,) = build(Metric("lat", "distribution", value, {}, ts), distribution="statistic_set")
    assert stats["StatisticValues"] == {"SampleCount": 4.0, "Sum": 5.0, "Minimum": 1.0, "Maximum": 2.0}
    # A distribution that only has a statistic set goes as one, in either mode.
    only_stats = {"sum": 5.0, "count": 4.0, "min": 1.0, "max": 2.0}
    assert "StatisticValues" in build(Metric("lat", "distribution", only_stats, {}, ts))[1][0]
    assert build(Metric("lat", "distribution", [], {}, ts))[1] == []  # nothing observed: nothing sent
    assert build(Metric("c", "counter", 1.0, {}, 0.0))[1][0]["Timestamp"].timestamp() == NOW  # no time: now


@pytest.mark.parametrize(("distinct", "datums"), [(150, 1), (151, 2), (300, 2), (301, 3)])
def test_values_per_datum_at_the_limit_and_over(distinct: int, datums: int) -> None:
    value = {"values": [float(i) for i in range(distinct)], "counts": [1.0] * distinct}
    _, out = build(Metric("lat", "distribution", value, {"a": "b"}, NOW))
    assert len(out) == datums
    assert all(len(d["Values"]) <= 150 and len(d["Values"]) == len(d["Counts"]) for d in out)
    assert sorted(v for d in out for v in d["Values"]) == [float(i) for i in range(distinct)]
    assert all(d["Dimensions"] == [{"Name": "a", "Value": "b"}] for d in out)  # same metric, merged by CloudWatch


@pytest.mark.parametrize(("count", "ok"), [(30, True), (31, False)])
def test_dimensions_at_the_limit_and_over(count: int, ok: bool) -> None:
    metric = Metric("m", "gauge", 1.0, {f"d{i:02d}": "v" for i in range(count)}, NOW)
    if ok:
        assert len(build(metric)[1][0]["Dimensions"]) == 30
    else:
        assert reason(metric) == "too_many_dimensions"


def test_appended_dimensions_count_against_the_limit() -> None:
    metric = Metric("m", "gauge", 1.0, {f"d{i:02d}": "v" for i in range(29)}, NOW)
    assert len(build(metric, append={"InstanceId": "i-1"})[1][0]["Dimensions"]) == 30
    assert reason(metric, append={"InstanceId": "i-1", "InstanceType": "t3"}) == "too_many_dimensions"
    # A tag of the same name wins over the appended value.
    dims = build(Metric("m", "gauge", 1.0, {"InstanceId": "mine"}, NOW), append={"InstanceId": "i-1"})[1][0]
    assert dims["Dimensions"] == [{"Name": "InstanceId", "Value": "mine"}]


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        ({"k": ""}, "invalid_dimension"),
        ({"k": "   "}, "invalid_dimension"),
        ({"k": "Jos\u00e9"}, "invalid_dimension"),  # dimension values are ASCII only
        ({"k": "a\nb"}, "invalid_dimension"),
        ({"k": "x" * 1025}, "invalid_dimension"),
        ({"x" * 256: "v"}, "invalid_dimension"),
        ({":k": "v"}, "invalid_dimension"),
    ],
)
def test_invalid_dimensions(tags: dict[str, str], why: str) -> None:
    assert reason(Metric("m", "gauge", 1.0, tags, NOW)) == why


def test_dimension_lengths_at_the_limit() -> None:
    _, (datum,) = build(Metric("m", "gauge", 1.0, {"x" * 255: "v" * 1024}, NOW))
    assert datum["Dimensions"] == [{"Name": "x" * 255, "Value": "v" * 1024}]


@pytest.mark.parametrize(
    ("metric", "why"),
    [
        (Metric("", "gauge", 1.0, {}, NOW), "invalid_metric_name"),
        (Metric("x" * 256, "gauge", 1.0, {}, NOW), "invalid_metric_name"),
        (Metric("m", "gauge", math.nan, {}, NOW), "invalid_value"),
        (Metric("m", "counter", math.inf, {}, NOW), "invalid_value"),
        (Metric("m", "gauge", 2.0**361, {}, NOW), "invalid_value"),
        (Metric("m", "gauge", "1", {}, NOW), "invalid_value"),
        (Metric("m", "distribution", {"values": [1.0, math.inf]}, {}, NOW), "invalid_value"),
        (Metric("m", "distribution", "x", {}, NOW), "invalid_value"),
        (Metric("m", "gauge", 1.0, {}, NOW - 14 * 86400 - 1), "timestamp_out_of_range"),
        (Metric("m", "gauge", 1.0, {}, NOW + 7201), "timestamp_out_of_range"),
        (Metric("m", "histogram", 1.0, {}, NOW), "unknown_metric_type"),  # type: ignore[arg-type]
    ],
)
def test_records_cloudwatch_would_reject(metric: Metric, why: str) -> None:
    assert reason(metric) == why


def test_value_edges() -> None:
    assert build(Metric("m", "gauge", 2.0**360, {}, NOW))[1][0]["Value"] == 2.0**360
    assert build(Metric("m", "gauge", 1e-200, {}, NOW))[1][0]["Value"] == 0.0  # below 2^-360: stored as zero
    assert build(Metric("m", "gauge", 1.0, {}, NOW - 14 * 86400))[1]  # exactly two weeks old is accepted
    assert build(Metric("m", "gauge", 1.0, {}, NOW + 7200))[1]


def test_namespaces_dimensions_and_resolution_options() -> None:
    tags = {"namespace": "Shop", "route": "/a", "request_id": "r1"}
    ns, (datum,) = build(Metric("m", "gauge", 1.0, tags, NOW), namespace_from_tag="namespace")
    assert ns == "Shop" and [d["Name"] for d in datum["Dimensions"]] == ["request_id", "route"]
    _, (datum,) = build(Metric("m", "gauge", 1.0, tags, NOW), drop_dimensions=frozenset({"request_id"}))
    assert [d["Name"] for d in datum["Dimensions"]] == ["namespace", "route"]
    _, (datum,) = build(Metric("m", "gauge", 1.0, tags, NOW), dimensions=("route", "missing"))
    assert datum["Dimensions"] == [{"Name": "route", "Value": "/a"}]
    assert reason(Metric("m", "gauge", 1.0, {"ns": "AWS/EC2"}, NOW), namespace_from_tag="ns") == "invalid_namespace"
    high = Metric("m", "counter", 1.0, {}, NOW, None, 10.0)
    assert build(high)[1][0]["StorageResolution"] == 1
    assert "StorageResolution" not in build(Metric("m", "counter", 1.0, {}, NOW, None, 60.0))[1][0]
    assert "StorageResolution" not in build(Metric("m", "counter", 1.0, {}, NOW))[1][0]  # a raw point
    assert "StorageResolution" not in build(high, resolution=60)[1][0]
    assert build(Metric("m", "counter", 1.0, {}, NOW), resolution=1)[1][0]["StorageResolution"] == 1
    builder = DatumBuilder(DatumOptions(namespace="App"))
    assert "Unit" not in builder.datums(Metric("m", "gauge", 1.0, {}, NOW, "ms"), NOW)[1][0]
    assert builder.unknown_units == 1


# ----------------------------------------------------------------- sizes and requests

_MODEL = ServiceModel(Loader().load_service_model("cloudwatch", "service-2"), "cloudwatch")
_OPERATION = _MODEL.operation_model("PutMetricData")


def serialized_sizes(namespace: str, datums: list[dict[str, Any]]) -> dict[str, int]:
    params = {"Namespace": namespace, "MetricData": datums}
    sizes = {}
    for protocol in ("query", "json", "smithy-rpc-v2-cbor"):
        body = create_serializer(protocol, include_validation=False).serialize_to_request(params, _OPERATION)["body"]
        sizes[protocol] = (
            len(urllib.parse.urlencode(body, doseq=True).encode()) if isinstance(body, dict) else len(body)
        )
    return sizes


_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x10FFFF, exclude_categories=("Cs",)), min_size=1, max_size=40
)
_ascii = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40)
_number = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=25, deadline=None)
@given(
    name=_text,
    namespace=_text,
    dims=st.dictionaries(_ascii, _ascii, max_size=30),
    values=st.lists(_number, min_size=1, max_size=150, unique=True),
    shape=st.sampled_from(["value", "values", "stats"]),
    unit=st.sampled_from([None, "Milliseconds", "Bytes/Second"]),
    high=st.booleans(),
)
def test_the_size_estimate_is_an_upper_bound_for_every_protocol(
    name: str, namespace: str, dims: dict[str, str], values: list[float], shape: str, unit: str | None, high: bool
) -> None:
    datum: dict[str, Any] = {
        "MetricName": name,
        "Timestamp": datetime.datetime.fromtimestamp(NOW, datetime.UTC),
        "Dimensions": [{"Name": k, "Value": v} for k, v in dims.items()],
    }
    if unit:
        datum["Unit"] = unit
    if high:
        datum["StorageResolution"] = 1
    if shape == "value":
        datum["Value"] = values[0]
    elif shape == "values":
        datum["Values"] = values
        datum["Counts"] = [float(i + 1) for i in range(len(values))]
    else:
        datum["StatisticValues"] = {
            "SampleCount": 1e6,
            "Sum": values[0],
            "Minimum": min(values),
            "Maximum": max(values),
        }
    # Many datums in one request: member numbers grow to four digits.
    datums = [datum] * 1000
    bound = request_overhead(namespace) + 1000 * estimate(datum)
    for protocol, size in serialized_sizes(namespace, datums).items():
        assert size <= bound, protocol


def _datum(name: str = "m") -> dict[str, Any]:
    return {"MetricName": name, "Timestamp": datetime.datetime.now(datetime.UTC), "Value": 1.0}


def test_pack_at_the_datum_limit_and_one_over() -> None:
    items = [(i, "App", [_datum()]) for i in range(1000)]
    assert [len(r.datums) for r in pack(items, 1000, 10**9)] == [1000]
    items.append((1000, "App", [_datum()]))
    requests = pack(items, 1000, 10**9)
    assert [len(r.datums) for r in requests] == [1000, 1]
    assert requests[1].records == [1000]


def test_pack_at_the_byte_limit_and_one_over() -> None:
    size = estimate(_datum())
    exact = request_overhead("App") + 10 * size
    assert [len(r.datums) for r in pack([(i, "App", [_datum()]) for i in range(10)], 1000, exact)] == [10]
    assert [len(r.datums) for r in pack([(i, "App", [_datum()]) for i in range(10)], 1000, exact - 1)] == [9, 1]
    for request in pack([(i, "App", [_datum()]) for i in range(100)], 1000, exact):
        assert request.nbytes <= exact


def test_pack_keeps_records_whole_and_namespaces_apart() -> None:
    three = [_datum("a"), _datum("a"), _datum("a")]
    requests = pack([(0, "App", three), (1, "Other", [_datum()]), (2, "App", three), (3, "App", [])], 5, 10**9)
    by_ns = {(r.namespace, tuple(r.records)): len(r.datums) for r in requests}
    assert by_ns == {("App", (0,)): 3, ("App", (2,)): 3, ("Other", (1,)): 1}


@pytest.mark.parametrize("weights", [[1.0], [1.0, 3.0, 10.0], [0.5, 2.0]])
def test_split_datums_carry_statistic_sets_that_add_up_to_the_exact_figures(weights: list[float]) -> None:
    """A bucketed distribution (500 distinct values) becomes several datums; whether CloudWatch computes Sum,
    SampleCount, Minimum and Maximum from their Values/Counts or from their statistic sets, the result is exact."""
    dist = Distribution()
    samples = [float(v) for v in range(-400, 1000, 2)] + [0.001, 123456.5]
    for i, v in enumerate(samples):
        dist.add(v, weights[i % len(weights)])
    assert dist.bucketed
    _, out = build(Metric("lat", "distribution", dist.to_value(), {}, NOW))
    assert len(out) > 1 and all(len(d["Values"]) <= MAX_VALUES_PER_DATUM.value for d in out)
    count = math.fsum(weights[i % len(weights)] for i in range(len(samples)))
    total = math.fsum(v * weights[i % len(weights)] for i, v in enumerate(samples))
    for d in out:  # each datum's statistic set describes its own values
        stats = d["StatisticValues"]
        assert stats["SampleCount"] == pytest.approx(math.fsum(d["Counts"]))
        assert stats["Sum"] == pytest.approx(math.fsum(v * c for v, c in zip(d["Values"], d["Counts"], strict=True)))
        assert (stats["Minimum"], stats["Maximum"]) == (min(d["Values"]), max(d["Values"]))
    from_stats = (
        math.fsum(d["StatisticValues"]["SampleCount"] for d in out),
        math.fsum(d["StatisticValues"]["Sum"] for d in out),
        min(d["StatisticValues"]["Minimum"] for d in out),
        max(d["StatisticValues"]["Maximum"] for d in out),
    )
    assert from_stats[0] == pytest.approx(count) and from_stats[1] == pytest.approx(total, rel=1e-12)
    assert from_stats[2:] == (-400.0, 123456.5)
