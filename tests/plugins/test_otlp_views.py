"""The receive views of OTLP trace and log requests (plugins/common/otlp/views.py) and the attribute cache.

The views must read every body the real messages read, field for field; converting through a view must give
exactly what the real messages say; a span or log record whose deferred fields do not decode is rejected
alone; and the cache stays bounded and never shares a mutable value between records.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from collector_plugins.common.otlp.logs import logs_from_request
from collector_plugins.common.otlp.traces import spans_from_request
from collector_plugins.common.otlp.values import KeyValueCache, any_value, attributes, raw_attributes
from collector_plugins.common.otlp.views import LOGS_VIEW, RAW_FIELDS, TRACES_VIEW

_BYTES = 12  # FieldDescriptor.TYPE_BYTES


def _pairs(real: object, view: object) -> list[tuple[object, object]]:
    """(real message descriptor, view message descriptor) for every message of a file, nested ones too."""
    out = []

    def walk(r: object, v: object) -> None:
        out.append((r, v))
        for name, nested in r.nested_types_by_name.items():  # type: ignore[attr-defined]
            walk(nested, v.nested_types_by_name[name])  # type: ignore[attr-defined]

    for name, message in real.message_types_by_name.items():  # type: ignore[attr-defined]
        walk(message, view.message_types_by_name[name])  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("real, view", [(trace_pb2.DESCRIPTOR, TRACES_VIEW), (logs_pb2.DESCRIPTOR, LOGS_VIEW)])
def test_view_fields_match_the_real_messages_number_for_number(real: object, view: type) -> None:
    raw = RAW_FIELDS[real.name]  # type: ignore[attr-defined]
    checked = 0
    for real_message, view_message in _pairs(real, view.DESCRIPTOR.file):
        assert set(real_message.fields_by_name) == set(view_message.fields_by_name)
        for name, field in real_message.fields_by_name.items():
            twin = view_message.fields_by_name[name]
            assert (twin.number, twin.is_repeated) == (field.number, field.is_repeated), f"{real_message.name}.{name}"
            if name in raw.get(real_message.name, ()):
                assert twin.type == _BYTES and field.message_type is not None
            else:
                assert twin.type == field.type, f"{real_message.name}.{name}"
            checked += 1
    assert checked >= 15  # every field of every message was compared


def _value(draw: st.DrawFn, depth: int = 0) -> AnyValue:
    value = AnyValue()
    case = draw(st.sampled_from(["s", "i", "d", "b", "y", "none", "arr", "kv"] if depth < 2 else ["s", "i"]))
    if case == "s":
        value.string_value = draw(st.text(max_size=8))
    elif case == "i":
        value.int_value = draw(st.integers(-(2**63), 2**63 - 1))
    elif case == "d":
        value.double_value = draw(st.floats(allow_nan=False))
    elif case == "b":
        value.bool_value = draw(st.booleans())
    elif case == "y":
        value.bytes_value = draw(st.binary(max_size=6))
    elif case == "arr":
        for _ in range(draw(st.integers(0, 3))):
            value.array_value.values.append(_value(draw, depth + 1))
        value.array_value.SetInParent()
    elif case == "kv":
        for _ in range(draw(st.integers(0, 3))):
            value.kvlist_value.values.add(key=draw(st.text(max_size=4))).value.CopyFrom(_value(draw, depth + 1))
        value.kvlist_value.SetInParent()
    return value


def _attributes(draw: st.DrawFn, field: object) -> None:
    for _ in range(draw(st.integers(0, 5))):
        field.add(key=draw(st.sampled_from(["a", "b", "http.route", ""]))).value.CopyFrom(_value(draw))  # type: ignore[attr-defined]


@st.composite
def trace_requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope_spans = request.resource_spans.add().scope_spans.add()
    for _ in range(draw(st.integers(1, 4))):
        span = scope_spans.spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name="s", end_time_unix_nano=9)
        _attributes(draw, span.attributes)
        if draw(st.booleans()):
            span.status.code = draw(st.sampled_from([0, 1, 2]))
            span.status.message = draw(st.text(max_size=5))
        for _ in range(draw(st.integers(0, 2))):
            _attributes(draw, span.events.add(name="e", time_unix_nano=3).attributes)
        for _ in range(draw(st.integers(0, 2))):
            _attributes(draw, span.links.add(trace_id=os.urandom(16), span_id=os.urandom(8)).attributes)
    return request


@given(trace_requests())
@settings(max_examples=200, deadline=None)
def test_spans_through_the_view_say_what_the_real_message_says(request: ExportTraceServiceRequest) -> None:
    spans = request.resource_spans[0].scope_spans[0].spans
    view = TRACES_VIEW.FromString(request.SerializeToString())
    for records in (spans_from_request(view).records, spans_from_request(request).records):
        assert len(records) == len(spans)
        for record, span in zip(records, spans, strict=True):
            assert record["attributes"] == attributes(span.attributes)
            assert record["status"] == {"code": span.status.code, "message": span.status.message}
            assert [e["attributes"] for e in record["events"]] == [attributes(e.attributes) for e in span.events]
            assert [link["span_id"] for link in record["links"]] == [link.span_id.hex() for link in span.links]


def _bad_key_value() -> bytes:
    """An encoded KeyValue whose key is not UTF-8 (field 1, length 2, bytes ff fe)."""
    return b"\x0a\x02\xff\xfe" + KeyValue(value=AnyValue(string_value="v")).SerializeToString()


def test_a_span_with_an_undecodable_attribute_is_rejected_alone() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for name in ("first", "bad", "last"):
        spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name=name, end_time_unix_nano=1)
    spans[0].attributes.add(key="k").value.string_value = "v"
    view = TRACES_VIEW.FromString(request.SerializeToString())
    view.resource_spans[0].scope_spans[0].spans[1].attributes.append(_bad_key_value())
    # The body as a client would send it: the real message refuses it whole, the view parses it.
    body = view.SerializeToString()
    with pytest.raises(Exception, match=r"(?i)pars|utf"):
        ExportTraceServiceRequest.FromString(body)
    out = spans_from_request(TRACES_VIEW.FromString(body))
    assert [r["name"] for r in out.records] == ["first", "last"]
    assert out.rejected == 1 and "attributes" in out.error_message
    assert out.records[0]["attributes"] == {"k": "v"}


def test_a_log_record_with_an_undecodable_attribute_is_rejected_alone() -> None:
    view = LOGS_VIEW()
    records = view.resource_logs.add().scope_logs.add().log_records
    for text in ("one", "two", "three"):
        records.add(body=AnyValue(string_value=text))
    records[1].attributes.append(_bad_key_value())
    records[2].attributes.append(KeyValue(key="n", value=AnyValue(int_value=7)).SerializeToString())
    out = logs_from_request(LOGS_VIEW.FromString(view.SerializeToString()), 5.0)
    assert [(r["message"], r["attributes"]) for r in out.records] == [("one", {}), ("three", {"n": 7})]
    assert out.rejected == 1


def test_log_bodies_of_every_case_through_the_view() -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    bodies = [
        AnyValue(string_value="text"),
        AnyValue(string_value=""),
        AnyValue(),
        AnyValue(int_value=0),
        AnyValue(bool_value=False),
        AnyValue(bytes_value=b"\x00"),
    ]
    for body in bodies:
        records.add(body=body)
    out = logs_from_request(request, 1.0)
    assert [r["message"] for r in out.records] == ["text", "", "", 0, False, b"\x00"]


def test_the_cache_is_bounded_and_keeps_only_small_scalars() -> None:
    cache = KeyValueCache(max_entries=4, max_bytes=40)
    raws = [KeyValue(key="k", value=AnyValue(int_value=i)).SerializeToString() for i in range(10)]
    for raw in raws:
        assert raw_attributes([raw], cache) == {"k": any_value(KeyValue.FromString(raw).value)}
        assert len(cache.entries) <= 4
    big = KeyValue(key="k", value=AnyValue(string_value="x" * 100)).SerializeToString()
    nested = KeyValue(key="k", value=AnyValue(array_value={"values": [{"int_value": 1}]})).SerializeToString()
    assert raw_attributes([big], cache) == {"k": "x" * 100}
    first, second = raw_attributes([nested], cache), raw_attributes([nested], cache)
    assert first == second == {"k": [1]} and first["k"] is not second["k"]  # lists are never shared
    assert big not in cache.entries and nested not in cache.entries


def test_a_repeated_key_keeps_the_last_value_as_before() -> None:
    raws = [KeyValue(key="k", value=AnyValue(string_value=v)).SerializeToString() for v in ("a", "b")]
    assert raw_attributes(raws) == {"k": "b"}
