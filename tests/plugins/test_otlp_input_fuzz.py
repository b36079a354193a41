"""Hostile bodies for the `otlp` input's decoding and conversion: random bytes and mutated valid requests, in
protobuf and OTLP JSON, gzip or not. Decoding either yields a message or raises InvalidBody / TooLarge (a 400 /
413 answer); whatever decodes converts without raising. And over HTTP: never a 5xx, the server keeps serving."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path

import aiohttp
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector_plugins.common.otlp.logs import logs_from_request
from collector_plugins.common.otlp.metrics import OtlpMetricsConverter
from collector_plugins.common.otlp.traces import spans_from_request
from collector_plugins.inputs.otlp.decoding import JSON, PROTOBUF, InvalidBody, TooLarge, decode_body
from tests.plugins.test_otlp_input import json_span, json_trace_request, serving

LIMIT = 1 << 20
TYPES = [ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest]


def _valid_bodies() -> list[bytes]:
    trace = ExportTraceServiceRequest()
    span = (
        trace.resource_spans.add()
        .scope_spans.add()
        .spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="s", start_time_unix_nano=1, end_time_unix_nano=2)
    )
    span.attributes.add(key="k").value.array_value.values.add(int_value=3)
    span.events.add(name="e")
    logs = ExportLogsServiceRequest()
    logs.resource_logs.add().scope_logs.add().log_records.add(body={"string_value": "x"}, trace_id=b"\x03" * 16)
    metrics = ExportMetricsServiceRequest()
    metric = metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="m")
    metric.gauge.data_points.add(as_double=1.5, time_unix_nano=5)
    return [trace.SerializeToString(), logs.SerializeToString(), metrics.SerializeToString()]


VALID = _valid_bodies()
VALID_JSON = [orjson.dumps(json_trace_request(json_span(), json_span("b", parentSpanId="0102030405060708")))]


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for position, value in edits:
        if buf:
            buf[position % len(buf)] = value
    return bytes(buf)


def _convert(message: object, index: int) -> None:
    """Convert a decoded request (traces and logs arrive as their receive views): counted, never raising."""
    if index == 0:
        out = spans_from_request(message)  # type: ignore[arg-type]
        assert len(out.records) + out.rejected == _items(message, "resource_spans", "scope_spans", "spans")
    elif index == 1:
        out = logs_from_request(message, 0.0)
        assert len(out.records) + out.rejected == _items(message, "resource_logs", "scope_logs", "log_records")
    else:
        assert isinstance(message, ExportMetricsServiceRequest)
        OtlpMetricsConverter().convert(message, 0.0)


def _items(message: object, *path: str) -> int:
    level: list[object] = [message]
    for name in path:
        level = [child for parent in level for child in getattr(parent, name)]
    return len(level)


def _check(body: bytes, encoding: str, kind: str, index: int) -> None:
    try:
        message = decode_body(body, encoding, kind, TYPES[index], LIMIT)
    except (InvalidBody, TooLarge):
        return
    _convert(message, index)


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6)


@given(st.binary(max_size=300), st.sampled_from([PROTOBUF, JSON]), st.booleans(), st.integers(0, 2))
@settings(max_examples=400, deadline=None)
def test_random_bodies_decode_or_are_refused(body: bytes, kind: str, gzipped: bool, index: int) -> None:
    _check(gzip.compress(body) if gzipped else body, "gzip" if gzipped else "", kind, index)
    _check(body, "gzip", kind, index)  # not gzip at all, declared gzip


@given(st.integers(0, 2), edits, st.booleans())
@settings(max_examples=400, deadline=None)
def test_mutated_protobuf_requests_decode_or_are_refused(index: int, changes: list[tuple[int, int]], gz: bool) -> None:
    body = _mutate(VALID[index], changes)
    _check(gzip.compress(body) if gz else body, "gzip" if gz else "", PROTOBUF, index)
    _check(_mutate(gzip.compress(VALID[index]), changes), "gzip", PROTOBUF, index)  # a damaged gzip stream


@given(edits)
@settings(max_examples=300, deadline=None)
def test_mutated_json_requests_decode_or_are_refused(changes: list[tuple[int, int]]) -> None:
    _check(_mutate(VALID_JSON[0], changes), "", JSON, 0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_random_json_documents_decode_or_are_refused(document: object) -> None:
    for index in range(3):
        _check(json.dumps(document).encode(), "", JSON, index)


@given(
    st.lists(
        st.tuples(st.binary(max_size=200), st.sampled_from(["application/x-protobuf", "application/json"])),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_over_http_hostile_bodies_get_200_or_400_never_5xx(tmp_path: Path, bodies: list[tuple[bytes, str]]) -> None:
    async def run() -> None:
        async with serving(tmp_path) as (plugin, _), aiohttp.ClientSession() as session:
            assert plugin.http is not None
            base = f"http://127.0.0.1:{plugin.http.port}"
            for body, content_type in bodies:
                for path in ("/v1/traces", "/v1/logs", "/v1/metrics"):
                    async with session.post(base + path, data=body, headers={"Content-Type": content_type}) as r:
                        assert r.status in (200, 400), (r.status, body, content_type, path)
            # Still serving.
            headers = {"Content-Type": "application/x-protobuf"}
            async with session.post(base + "/v1/traces", data=VALID[0], headers=headers) as r:
                assert r.status == 200
            assert plugin.counters()["internal_errors"] == 0

    asyncio.run(run())
