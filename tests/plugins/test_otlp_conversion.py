"""OTLP traces and logs → records (the OTLP record contract), from requests the real OpenTelemetry SDK encodes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.trace import SpanKind, Status, StatusCode

from collector_plugins.common.otlp.logs import logs_from_request
from collector_plugins.common.otlp.traces import request_from_spans, spans_from_request
from collector_plugins.common.otlp.values import any_value, attributes, set_any_value
from tests.plugins.otlp_sdk import LogSdk, TraceSdk

NOW = 1_700_000_000.0


@pytest.fixture
def traces() -> Iterator[TraceSdk]:
    sdk = TraceSdk({"service.name": "shop", "host.name": "node-1"})
    yield sdk
    sdk.close()


@pytest.fixture
def logs() -> Iterator[LogSdk]:
    sdk = LogSdk({"service.name": "shop"})
    yield sdk
    sdk.close()


def test_sdk_spans_become_records_with_every_contract_field(traces: TraceSdk) -> None:
    tracer = traces.tracer
    with tracer.start_as_current_span("GET /cart", kind=SpanKind.SERVER, attributes={"http.method": "GET"}) as root:
        with tracer.start_as_current_span("db", kind=SpanKind.CLIENT) as child:
            child.set_attribute("db.rows", 3)
            child.set_attribute("ratio", 0.5)
            child.set_attribute("cached", True)
            child.set_attribute("tags", ["a", "b"])
            child.add_event("retry", {"attempt": 2})
            child.set_status(Status(StatusCode.ERROR, "boom"))
        root.add_link(child.get_span_context(), {"why": "test"})
    out = spans_from_request(traces.export())
    assert out.rejected == 0 and out.error_message == ""
    child_rec, root_rec = out.records  # the SDK exports spans as they end
    ctx = root.get_span_context()
    assert root_rec["format"] == "otlp"
    assert root_rec["trace_id"] == format(ctx.trace_id, "032x")
    assert root_rec["span_id"] == format(ctx.span_id, "016x")
    assert root_rec["parent_span_id"] == ""
    assert root_rec["kind"] == "server" and child_rec["kind"] == "client"
    assert child_rec["parent_span_id"] == root_rec["span_id"]
    assert child_rec["trace_id"] == root_rec["trace_id"]
    assert root_rec["attributes"] == {"http.method": "GET"}
    assert child_rec["attributes"] == {"db.rows": 3, "ratio": 0.5, "cached": True, "tags": ["a", "b"]}
    assert child_rec["status"] == {"code": 2, "message": "boom"}
    assert root_rec["status"] == {"code": 0, "message": ""}
    assert child_rec["events"][0]["name"] == "retry"
    assert child_rec["events"][0]["attributes"] == {"attempt": 2}
    assert child_rec["events"][0]["time_unix_nano"] > 0
    link = root_rec["links"][0]
    assert link["span_id"] == child_rec["span_id"] and link["attributes"] == {"why": "test"}
    assert root_rec["resource"]["service.name"] == "shop" and root_rec["resource"]["host.name"] == "node-1"
    assert root_rec["scope"] == {"name": "test.tracer", "version": "2.0", "attributes": {"scope.attr": "s"}}
    assert root_rec["start_time_unix_nano"] == root.start_time and root_rec["end_time_unix_nano"] == root.end_time
    assert root_rec["start_time"] == root.start_time / 1e9
    assert root_rec["timestamp"] == root_rec["end_time"] == root.end_time / 1e9
    assert root_rec["flags"] & 0x100  # the SDK sets "has parent-is-remote" bits
    for key in ("dropped_attributes_count", "dropped_events_count", "dropped_links_count"):
        assert root_rec[key] == 0
    assert root_rec["trace_state"] == ""


def _span_request(**fields: Any) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    good = {"trace_id": b"\x01" * 16, "span_id": b"\x02" * 8, "start_time_unix_nano": 5, "end_time_unix_nano": 9}
    spans.add(**good, name="good-1")
    spans.add(**{**good, **fields}, name="bad")
    spans.add(**good, name="good-2")
    return request


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"trace_id": b"\x01" * 15}, "trace_id"),
        ({"trace_id": bytes(16)}, "trace_id"),
        ({"span_id": b""}, "span_id"),
        ({"span_id": bytes(8)}, "span_id"),
        ({"start_time_unix_nano": 10, "end_time_unix_nano": 9}, "ends before"),
    ],
)
def test_an_invalid_span_is_rejected_alone_with_a_reason(fields: dict[str, Any], reason: str) -> None:
    out = spans_from_request(_span_request(**fields))
    assert [r["name"] for r in out.records] == ["good-1", "good-2"]
    assert out.rejected == 1 and reason in out.error_message


def test_a_malformed_parent_id_makes_a_root_span() -> None:
    out = spans_from_request(_span_request(parent_span_id=b"\x03" * 7))
    assert out.rejected == 0 and out.records[1]["parent_span_id"] == ""


def test_records_of_one_resource_share_its_dicts(traces: TraceSdk) -> None:
    for name in ("a", "b"):
        with traces.tracer.start_as_current_span(name):
            pass
    a, b = spans_from_request(traces.export()).records
    assert a["resource"] is b["resource"] and a["scope"] is b["scope"]


def test_spans_round_trip_through_request_from_spans(traces: TraceSdk) -> None:
    tracer = traces.tracer
    with tracer.start_as_current_span("root", attributes={"big": 2**62, "raw": b"\x00\xff", "m": [1, 2.5]}) as span:
        span.add_event("e", {"k": "v"})
        with tracer.start_as_current_span("child", kind=SpanKind.PRODUCER):
            pass
    request = traces.export()
    records = spans_from_request(request).records
    again = request_from_spans(records)
    assert spans_from_request(again).records == records
    # Same spans, same grouping (one resource, one scope).
    assert len(again.resource_spans) == 1 and len(again.resource_spans[0].scope_spans) == 1


def test_sdk_logs_become_records_with_trace_context(logs: LogSdk, traces: TraceSdk) -> None:
    from opentelemetry._logs import SeverityNumber

    with traces.tracer.start_as_current_span("op") as span:
        logs.logger.emit(
            body="payment failed",
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            attributes={"order": 7},
            timestamp=1_700_000_001_500_000_000,
        )
    logs.logger.emit(body={"structured": [1, "x"]}, event_name="app.event")
    out = logs_from_request(logs.export(), NOW)
    assert out.rejected == 0
    first, second = out.records
    ctx = span.get_span_context()
    assert first["message"] == "payment failed"
    assert first["timestamp"] == 1_700_000_001.5 and first["time_unix_nano"] == 1_700_000_001_500_000_000
    assert first["observed_time_unix_nano"] > 0
    assert first["severity_text"] == "ERROR" and first["severity_number"] == 17
    assert first["trace_id"] == format(ctx.trace_id, "032x") and first["span_id"] == format(ctx.span_id, "016x")
    assert first["attributes"] == {"order": 7}
    assert first["resource"]["service.name"] == "shop"
    assert first["scope"] == {"name": "test.logger", "version": "3.0", "attributes": {}}
    assert first["format"] == "otlp" and first["flags"] & 1 and "event_name" not in first
    assert second["message"] == {"structured": [1, "x"]}
    assert second["event_name"] == "app.event"
    assert "trace_id" not in second and "span_id" not in second  # no active span: no ids


def test_log_times_fall_back_to_observed_then_received() -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    records.add(observed_time_unix_nano=2_000_000_000)
    records.add(trace_id=b"\x01" * 15, span_id=b"\x02" * 8)
    out = logs_from_request(request, NOW)
    assert out.records[0]["timestamp"] == 2.0 and out.records[0]["message"] == ""
    assert out.records[1]["timestamp"] == NOW
    assert "trace_id" not in out.records[1] and out.records[1]["span_id"] == "0202020202020202"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(json_values)
@settings(max_examples=200, deadline=None)
def test_any_value_round_trips(value: Any) -> None:
    message = AnyValue()
    set_any_value(message, value)
    assert any_value(message) == value
    assert attributes([]) == {}
