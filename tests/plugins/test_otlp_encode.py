"""Records → OTLP export requests (plugins/common/otlp/encode.py, encode_metrics.py).

Metrics round-trip through the otlp input's converter (OtlpMetricsConverter): SDK request → records →
encode → convert again gives the same records. Spans and logs are checked field by field against the proto.
"""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from collector.events import Metric
from collector_plugins.common.otlp.encode import any_value, encode_logs, encode_spans
from collector_plugins.common.otlp.encode_metrics import encode_metrics
from collector_plugins.common.otlp.metrics import OtlpMetricsConverter, attributes
from tests.plugins.otlp_sdk import Sdk


def _any(value: AnyValue) -> object:
    from collector_plugins.common.otlp.values import any_value as decode

    return decode(value)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12,
)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_any_value_round_trips(value: object) -> None:
    out = AnyValue()
    any_value(value, out)
    assert _any(out) == value


def test_an_integer_beyond_int64_becomes_its_text() -> None:
    out = AnyValue()
    any_value(2**70, out)
    assert out.string_value == str(2**70)


SPAN = {
    "format": "otlp",
    "trace_id": "5b8efff798038103d269b633813fc60c",
    "span_id": "eee19b7ec3c1b174",
    "parent_span_id": "eee19b7ec3c1b173",
    "trace_state": "rojo=00f067aa0ba902b7",
    "flags": 257,
    "name": "GET /cart",
    "kind": "client",
    "start_time": 1_700_000_000.0,
    "end_time": 1_700_000_001.0,
    "start_time_unix_nano": 1_700_000_000_123_456_789,
    "end_time_unix_nano": 1_700_000_001_987_654_321,
    "attributes": {"http.method": "GET", "retries": 2, "ok": True, "ratio": 0.5, "tags": ["a", "b"]},
    "events": [
        {"name": "exception", "time_unix_nano": 1_700_000_000_5, "attributes": {"x": 1}, "dropped_attributes_count": 1}
    ],
    "links": [
        {
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
            "trace_state": "",
            "attributes": {},
            "flags": 1,
        }
    ],
    "status": {"code": 2, "message": "boom"},
    "resource": {"service.name": "cart", "host.cores": 4},
    "scope": {"name": "io.opentelemetry.http", "version": "1.2", "attributes": {"a": "b"}},
    "dropped_attributes_count": 3,
    "dropped_events_count": 4,
    "dropped_links_count": 5,
    "timestamp": 1_700_000_001.0,
}


def test_a_span_keeps_every_field() -> None:
    encoded = encode_spans([SPAN])
    (rs,) = encoded.request.resource_spans
    assert attributes(rs.resource.attributes) == SPAN["resource"]
    (ss,) = rs.scope_spans
    assert (ss.scope.name, ss.scope.version, attributes(ss.scope.attributes)) == (
        "io.opentelemetry.http",
        "1.2",
        {"a": "b"},
    )
    (span,) = ss.spans
    assert span.trace_id.hex() == SPAN["trace_id"] and span.span_id.hex() == SPAN["span_id"]
    assert span.parent_span_id.hex() == SPAN["parent_span_id"]
    assert (span.trace_state, span.flags, span.name, span.kind) == ("rojo=00f067aa0ba902b7", 257, "GET /cart", 3)
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (
        1_700_000_000_123_456_789,
        1_700_000_001_987_654_321,
    )
    assert attributes(span.attributes) == SPAN["attributes"]
    (event,) = span.events
    assert (event.name, event.time_unix_nano, attributes(event.attributes), event.dropped_attributes_count) == (
        "exception",
        1_700_000_000_5,
        {"x": 1},
        1,
    )
    (link,) = span.links
    assert (link.trace_id.hex(), link.span_id.hex(), link.flags) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
        1,
    )
    assert (span.status.code, span.status.message) == (2, "boom")
    assert (span.dropped_attributes_count, span.dropped_events_count, span.dropped_links_count) == (3, 4, 5)
    assert encoded.kept == [0] and encoded.sizes[0] >= span.ByteSize()


def test_spans_are_grouped_by_resource_and_scope_in_first_seen_order() -> None:
    def with_(i: int, service: str, scope: str) -> dict[str, object]:
        return {**SPAN, "span_id": f"{i + 1:016x}", "resource": {"service.name": service}, "scope": {"name": scope}}

    records = [with_(0, "a", "s1"), with_(1, "b", "s1"), with_(2, "a", "s2"), with_(3, "a", "s1")]
    request = encode_spans(records).request
    layout = [
        (
            attributes(rs.resource.attributes)["service.name"],
            ss.scope.name,
            [int(s.span_id.hex(), 16) - 1 for s in ss.spans],
        )
        for rs in request.resource_spans
        for ss in rs.scope_spans
    ]
    assert layout == [("a", "s1", [0, 3]), ("a", "s2", [2]), ("b", "s1", [1])]


def test_invalid_spans_are_rejected_alone_with_a_reason() -> None:
    records = [SPAN, {**SPAN, "span_id": ""}, {**SPAN, "trace_id": "abcd"}, {"message": "a log line"}, "text"]
    encoded = encode_spans(records)
    assert encoded.kept == [0]
    assert [i for i, _ in encoded.rejected] == [1, 2, 3, 4]
    assert "without trace_id or span_id" in encoded.rejected[0][1]
    assert "not 16 bytes" in encoded.rejected[1][1]


def test_an_xray_segment_becomes_spans_with_its_subsegments() -> None:
    segment = {
        "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
        "id": "53995c3f42cd8ad8",
        "name": "web",
        "start_time": 1_700_000_000.5,
        "end_time": 1_700_000_001.25,
        "http": {"request": {"method": "GET", "url": "http://x/y"}, "response": {"status": 500}},
        "fault": True,
        "annotations": {"customer": "c1"},
        "subsegments": [
            {
                "id": "0123456789abcdef",
                "name": "dynamodb",
                "namespace": "aws",
                "start_time": 1_700_000_000.6,
                "end_time": 1_700_000_000.7,
            }
        ],
    }
    encoded = encode_spans([segment])
    (rs,) = encoded.request.resource_spans
    assert attributes(rs.resource.attributes) == {"service.name": "web"}
    parent, child = rs.scope_spans[0].spans
    assert parent.trace_id.hex() == "5759e988bd862e3fe1be46a994272793"
    assert (parent.span_id.hex(), parent.parent_span_id, parent.kind) == ("53995c3f42cd8ad8", b"", 2)
    assert parent.start_time_unix_nano == 1_700_000_000_500_000_000
    assert attributes(parent.attributes) == {
        "customer": "c1",
        "http.request.method": "GET",
        "url.full": "http://x/y",
        "http.response.status_code": 500,
    }
    assert parent.status.code == 2
    assert (child.parent_span_id.hex(), child.trace_id, child.kind) == ("53995c3f42cd8ad8", parent.trace_id, 3)


LOG = {
    "format": "otlp",
    "message": "user logged in",
    "timestamp": 1_700_000_000.0,
    "time_unix_nano": 1_700_000_000_000_000_123,
    "observed_time_unix_nano": 1_700_000_000_000_000_456,
    "severity_text": "INFO",
    "severity_number": 9,
    "trace_id": "5b8efff798038103d269b633813fc60c",
    "span_id": "eee19b7ec3c1b174",
    "attributes": {"user.id": "12345"},
    "resource": {"service.name": "auth"},
    "scope": {"name": "auth.log", "version": "", "attributes": {}},
    "flags": 1,
    "dropped_attributes_count": 2,
    "event_name": "login",
}


def test_an_otlp_log_record_keeps_every_field() -> None:
    request = encode_logs([LOG, {**LOG, "message": {"structured": [1, 2]}}]).request
    (rl,) = request.resource_logs
    assert attributes(rl.resource.attributes) == {"service.name": "auth"}
    first, second = rl.scope_logs[0].log_records
    assert first.body.string_value == "user logged in"
    assert (first.time_unix_nano, first.observed_time_unix_nano) == (
        1_700_000_000_000_000_123,
        1_700_000_000_000_000_456,
    )
    assert (first.severity_text, first.severity_number, first.flags, first.dropped_attributes_count) == (
        "INFO",
        9,
        1,
        2,
    )
    assert (first.trace_id.hex(), first.span_id.hex(), first.event_name) == (LOG["trace_id"], LOG["span_id"], "login")
    assert attributes(first.attributes) == {"user.id": "12345"}
    assert _any(second.body) == {"structured": [1, 2]}


def test_a_plain_log_line_becomes_body_and_attributes() -> None:
    record = {"timestamp": 1_700_000_000.25, "message": b"GET /x 200", "status": 200, "path": "/x", "raw": b"\xff\x00"}
    (log,) = encode_logs([record]).request.resource_logs[0].scope_logs[0].log_records
    assert log.body.string_value == "GET /x 200"
    assert log.time_unix_nano == 1_700_000_000_250_000_000
    assert attributes(log.attributes) == {"status": 200, "path": "/x", "raw": b"\xff\x00"}


def test_a_log_line_with_trace_context_gets_the_ids() -> None:
    record = {
        "timestamp": 1.0,
        "message": "x",
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
    }
    (log,) = encode_logs([record]).request.resource_logs[0].scope_logs[0].log_records
    assert log.trace_id.hex() == record["trace_id"] and not log.attributes
    bad = {"timestamp": 1.0, "message": "x", "trace_id": "1-5759e988-bd86", "span_id": "e"}
    (log,) = encode_logs([bad]).request.resource_logs[0].scope_logs[0].log_records
    assert log.trace_id == b"" and attributes(log.attributes) == {"trace_id": "1-5759e988-bd86", "span_id": "e"}


# -- metrics ----------------------------------------------------------------------------------------------


def _convert(request: object) -> list[Metric]:
    conversion = OtlpMetricsConverter(max_series=1000).convert(request, received=time.time())  # type: ignore[arg-type]
    assert conversion.rejected == 0, conversion.error_message
    return conversion.records


def test_otlp_delta_metrics_round_trip_exactly() -> None:
    sdk = Sdk(delta=True, resource={"service.name": "shop", "host.cores": 8}, exponential=["latency.exp"])
    meter = sdk.meter
    meter.create_counter("orders", unit="1").add(7, {"region": "eu", "big": 2**40})
    meter.create_counter("bytes.f", unit="By").add(2.5, {"region": "us"})
    meter.create_up_down_counter("queue").add(-3)
    meter.create_histogram("latency", unit="ms").record(12.5, {"route": "/a"})
    meter.create_histogram("latency").record(250.0, {"route": "/a"})
    for v in (0.5, 3.0, 3.0, 700.0):
        meter.create_histogram("latency.exp", unit="s").record(v)
    meter.create_gauge("temp").set(21.5, {"room": "b"})
    request = sdk.export()
    sdk.close()
    records = _convert(request)
    assert {m.name for m in records} == {"orders", "bytes.f", "queue", "latency", "latency.exp", "temp"}
    again = _convert(encode_metrics(records).request)
    assert again == records


def test_cumulative_otlp_sums_round_trip_as_their_increase() -> None:
    sdk = Sdk(delta=False)
    counter = sdk.meter.create_counter("hits")
    counter.add(5)
    converter = OtlpMetricsConverter(max_series=1000)
    converter.convert(sdk.export(), received=time.time())  # primes
    counter.add(3)
    (record,) = converter.convert(sdk.export(), received=time.time()).records
    sdk.close()
    (metric,) = encode_metrics([record]).request.resource_metrics[0].scope_metrics[0].metrics
    assert metric.sum.aggregation_temporality == 1 and metric.sum.is_monotonic
    assert metric.sum.data_points[0].as_int == 3
    assert _convert(encode_metrics([record]).request)[0].value == 3.0


@pytest.mark.parametrize(
    "value",
    [[1.0, 2.0, 2.0, 5.5], {"values": [0.1, 7.0], "counts": [3, 1]}, [42.0]],
)
def test_raw_distribution_values_are_kept_exactly(value: object) -> None:
    record = Metric("lat", "distribution", value, {"host": "a"}, 1_700_000_000.0, interval=60.0)
    (metric,) = encode_metrics([record]).request.resource_metrics[0].scope_metrics[0].metrics
    point = metric.histogram.data_points[0]
    values = value["values"] if isinstance(value, dict) else value
    counts = value["counts"] if isinstance(value, dict) else [1] * len(value)
    expanded = sorted(v for v, c in zip(values, counts, strict=True) for _ in range(c))
    from_buckets = sorted(b for b, c in zip(point.explicit_bounds, point.bucket_counts, strict=False) for _ in range(c))
    assert from_buckets == expanded and point.bucket_counts[-1] == 0
    assert (point.count, point.min, point.max) == (len(expanded), min(expanded), max(expanded))
    assert math.isclose(point.sum, sum(expanded))
    assert point.time_unix_nano - point.start_time_unix_nano == 60 * 10**9
    assert attributes(point.attributes) == {"host": "a"}


def test_statsd_like_metrics_map_to_otlp_types() -> None:
    records = [
        Metric("c", "counter", 5.0, {}, 100.0, interval=10.0),
        Metric("neg", "counter", -2.0, {}, 100.0),
        Metric("g", "gauge", 1.5, {}, 100.0, unit="Milliseconds"),
        Metric("s", "set", ["a", "b", "c"], {}, 100.0),
    ]
    metrics = encode_metrics(records).request.resource_metrics[0].scope_metrics[0].metrics
    c, neg, g, s = metrics
    assert c.sum.is_monotonic and c.sum.data_points[0].as_double == 5.0
    assert c.sum.data_points[0].start_time_unix_nano == 90 * 10**9
    assert not neg.sum.is_monotonic and neg.sum.data_points[0].as_double == -2.0
    assert g.gauge.data_points[0].as_double == 1.5 and g.unit == "ms"
    assert s.gauge.data_points[0].as_int == 3


def test_invalid_metrics_are_rejected_alone() -> None:
    records = [
        Metric("ok", "gauge", 1.0, {}, 1.0),
        Metric("nan", "gauge", math.nan, {}, 1.0),
        Metric("d", "distribution", {"values": [1.0], "counts": [0.5]}, {}, 1.0),
        {"not": "a metric"},
    ]
    encoded = encode_metrics(records)
    assert encoded.kept == [0] and [i for i, _ in encoded.rejected] == [1, 2, 3]
