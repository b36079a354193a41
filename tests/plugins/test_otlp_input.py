"""The `otlp` input with real clients: the OpenTelemetry SDK's OTLP exporters (gRPC and HTTP), aiohttp requests
written against the OTLP/HTTP spec (JSON, gzip, errors), grpc.aio stubs; partial success, retryable answers
when the pipeline is full or data is not yet durable, and acks through the real runtime."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import orjson
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.trace import SpanKind

from collector.api import HostFacts
from collector.config import parse_config
from collector.events import LOGS, METRICS, TRACES
from collector.registry import load_registry
from collector.runtime import Runtime
from collector.testing import Capture, free_port, wait_for
from collector_plugins.common.listening.addresses import LISTEN_BACKLOG
from collector_plugins.inputs.otlp.input import Otlp, OtlpConfig
from tests.descriptors import left_open_by_stop
from tests.plugins.otlp_sdk import LogSdk, Sdk, TraceSdk
from tests.plugins.receiver_support import Sink, listen_backlog, make_context, running

TRACE_ID = "5b8efff798038103d269b633813fc60c"
SPAN_ID = "eee19b7ec3c1b174"


@asynccontextmanager
async def serving(tmp_path: Path, sink: Sink | None = None, **options: Any) -> AsyncIterator[tuple[Otlp, Sink]]:
    options.setdefault("grpc_listen", "127.0.0.1:0")
    options.setdefault("http_listen", "127.0.0.1:0")
    sink = sink or Sink()
    ctx = make_context(tmp_path, sink)
    plugin = Otlp(OtlpConfig(type="otlp", **options), ctx)
    async with running(plugin, ctx):
        await wait_for(lambda: plugin.receiver is not None)
        yield plugin, sink


def url(plugin: Otlp, path: str) -> str:
    assert plugin.http is not None
    return f"http://127.0.0.1:{plugin.http.port}{path}"


def grpc_target(plugin: Otlp) -> str:
    assert plugin.grpc is not None
    return f"127.0.0.1:{plugin.grpc.port}"


def sdk_spans() -> tuple[Any, TraceSdk]:
    sdk = TraceSdk({"service.name": "checkout"})
    tracer = sdk.tracer
    with (
        tracer.start_as_current_span("GET /pay", kind=SpanKind.SERVER, attributes={"http.method": "GET"}),
        tracer.start_as_current_span("charge", kind=SpanKind.CLIENT),
    ):
        pass
    return sdk.exporter.get_finished_spans(), sdk


def json_trace_request(*spans: dict[str, Any]) -> dict[str, Any]:
    """An OTLP/JSON ExportTraceServiceRequest as the spec's example shows it (hex ids, lowerCamelCase)."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-app"}}]},
                "scopeSpans": [{"scope": {"name": "manual", "version": "1"}, "spans": list(spans)}],
            }
        ]
    }


def json_span(name: str = "op", trace_id: str = TRACE_ID, span_id: str = SPAN_ID, **more: Any) -> dict[str, Any]:
    return {
        "traceId": trace_id,
        "spanId": span_id,
        "parentSpanId": "",
        "name": name,
        "kind": 2,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "attributes": [{"key": "my.span.attr", "value": {"stringValue": "some value"}}],
        "status": {"code": 1},
        **more,
    }


# -- real SDK exporters ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_sdk_grpc_exporters_send_all_three_signals(tmp_path: Path, compression: str) -> None:
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import Compression, OTLPSpanExporter

    comp = Compression.Gzip if compression == "gzip" else Compression.NoCompression
    async with serving(tmp_path) as (plugin, sink):
        target = grpc_target(plugin)
        spans, tsdk = sdk_spans()
        result = await asyncio.to_thread(OTLPSpanExporter(target, insecure=True, compression=comp).export, spans)
        assert result.name == "SUCCESS"

        logs = LogSdk({"service.name": "checkout"})
        logs.logger.emit(body="paid", severity_text="INFO", attributes={"order": 1})
        exporter = OTLPLogExporter(target, insecure=True, compression=comp)
        assert (await asyncio.to_thread(exporter.export, logs.exporter.get_finished_logs())).name == "SUCCESS"

        msdk = Sdk(delta=True)
        msdk.meter.create_counter("orders").add(3, {"route": "/pay"})
        data = msdk.reader.get_metrics_data()
        metric_exporter = OTLPMetricExporter(target, insecure=True, compression=comp)
        assert (await asyncio.to_thread(metric_exporter.export, data)).name == "SUCCESS"
        for sdk in (tsdk, logs, msdk):
            sdk.close()

    kinds = [b.kind for b in sink.batches]
    assert kinds == [TRACES, LOGS, METRICS]
    trace_records = sink.batches[0].records
    assert {r["name"] for r in trace_records} == {"GET /pay", "charge"}
    server = next(r for r in trace_records if r["name"] == "GET /pay")
    assert server["kind"] == "server" and server["resource"]["service.name"] == "checkout"
    assert sink.batches[1].records[0]["message"] == "paid"
    assert sink.batches[1].records[0]["attributes"] == {"order": 1}
    metric = sink.batches[2].records[0]
    assert (metric.name, metric.type, metric.value, metric.tags) == (
        "orders",
        "counter",
        3,
        {"route": "/pay", "service.name": "shop"},
    )
    assert plugin.counters()["grpc_requests"] == 3 and plugin.counters()["spans"] == 2


@pytest.mark.parametrize("compression", ["none", "gzip"])
async def test_sdk_http_exporters_send_all_three_signals(tmp_path: Path, compression: str) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    comp = Compression.Gzip if compression == "gzip" else Compression.NoCompression
    async with serving(tmp_path) as (plugin, sink):
        spans, tsdk = sdk_spans()
        exporter = OTLPSpanExporter(endpoint=url(plugin, "/v1/traces"), compression=comp)
        assert (await asyncio.to_thread(exporter.export, spans)).name == "SUCCESS"
        logs = LogSdk()
        logs.logger.emit(body={"structured": True})
        log_exporter = OTLPLogExporter(endpoint=url(plugin, "/v1/logs"), compression=comp)
        assert (await asyncio.to_thread(log_exporter.export, logs.exporter.get_finished_logs())).name == "SUCCESS"
        msdk = Sdk()
        msdk.meter.create_up_down_counter("queue").add(-2)
        metric_exporter = OTLPMetricExporter(endpoint=url(plugin, "/v1/metrics"), compression=comp)
        assert (await asyncio.to_thread(metric_exporter.export, msdk.reader.get_metrics_data())).name == "SUCCESS"
        for sdk in (tsdk, logs, msdk):
            sdk.close()
    assert [b.kind for b in sink.batches] == [TRACES, LOGS, METRICS]
    assert sink.batches[1].records[0]["message"] == {"structured": True}
    assert sink.batches[2].records[0].value == -2
    assert plugin.counters()["http_requests"] == 3


# -- OTLP/HTTP by the spec: JSON, gzip, answers -------------------------------------------------------------------


async def test_json_request_with_hex_ids_and_a_json_answer(tmp_path: Path) -> None:
    async with serving(tmp_path) as (plugin, sink), aiohttp.ClientSession() as session:
        body = orjson.dumps(json_trace_request(json_span(parentSpanId="0102030405060708")))
        async with session.post(
            url(plugin, "/v1/traces"), data=body, headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("application/json")
            assert await r.json() == {}  # full success: partial_success left unset
    (record,) = sink.records
    assert record["trace_id"] == TRACE_ID and record["span_id"] == SPAN_ID
    assert record["parent_span_id"] == "0102030405060708"
    assert record["kind"] == "server" and record["status"] == {"code": 1, "message": ""}
    assert record["start_time_unix_nano"] == 1544712660000000000
    assert record["attributes"] == {"my.span.attr": "some value"}
    assert record["resource"] == {"service.name": "json-app"}


async def test_gzip_json_logs_with_unknown_fields_ignored(tmp_path: Path) -> None:
    request = {
        "resourceLogs": [
            {
                "resource": {},
                "scopeLogs": [
                    {
                        "logRecords": [
                            {
                                "timeUnixNano": "1700000000000000000",
                                "severityNumber": 9,
                                "body": {"stringValue": "hello"},
                                "traceId": TRACE_ID,
                                "spanId": SPAN_ID,
                                "someFutureField": 1,
                            }
                        ]
                    }
                ],
            }
        ]
    }
    async with serving(tmp_path) as (plugin, sink), aiohttp.ClientSession() as session:
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        async with session.post(
            url(plugin, "/v1/logs"), data=gzip.compress(orjson.dumps(request)), headers=headers
        ) as r:
            assert r.status == 200
    (record,) = sink.records
    assert record["message"] == "hello" and record["timestamp"] == 1_700_000_000.0
    assert record["trace_id"] == TRACE_ID and record["span_id"] == SPAN_ID and record["severity_number"] == 9


async def test_partial_success_over_http_json_protobuf_and_grpc(tmp_path: Path) -> None:
    zero = "0" * 32
    async with serving(tmp_path) as (plugin, sink), aiohttp.ClientSession() as session:
        body = orjson.dumps(json_trace_request(json_span("good"), json_span("bad", trace_id=zero), json_span("ok2")))
        async with session.post(
            url(plugin, "/v1/traces"), data=body, headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 200
            answer = await r.json()
        assert answer["partialSuccess"]["rejectedSpans"] in (1, "1")  # int64: a string in proto3 JSON
        assert "trace_id" in answer["partialSuccess"]["errorMessage"]

        request = trace_service_pb2.ExportTraceServiceRequest()
        spans = request.resource_spans.add().scope_spans.add().spans
        spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="fine")
        spans.add(trace_id=b"\x01" * 16, span_id=b"", name="no span id")
        headers = {"Content-Type": "application/x-protobuf"}
        async with session.post(url(plugin, "/v1/traces"), data=request.SerializeToString(), headers=headers) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/x-protobuf"
            response = trace_service_pb2.ExportTraceServiceResponse.FromString(await r.read())
        assert response.partial_success.rejected_spans == 1 and "span_id" in response.partial_success.error_message

        async with grpc.aio.insecure_channel(grpc_target(plugin)) as channel:
            reply = await trace_service_pb2_grpc.TraceServiceStub(channel).Export(request)
        assert reply.partial_success.rejected_spans == 1

    assert [r["name"] for r in sink.records] == ["good", "ok2", "fine", "fine"]
    assert plugin.counters()["rejected_spans"] == 3
    assert sink.losses["invalid_span"] == 3


async def test_a_full_success_answer_leaves_partial_success_unset(tmp_path: Path) -> None:
    request = logs_service_pb2.ExportLogsServiceRequest()
    request.resource_logs.add().scope_logs.add().log_records.add(body={"string_value": "x"})
    async with serving(tmp_path) as (plugin, _), grpc.aio.insecure_channel(grpc_target(plugin)) as channel:
        reply = await logs_service_pb2_grpc.LogsServiceStub(channel).Export(request)
    assert not reply.HasField("partial_success")


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"Content-Type": "text/plain"}, b"x", 415),
        ({"Content-Type": "application/x-protobuf", "Content-Encoding": "br"}, b"x", 415),
        ({"Content-Type": "application/x-protobuf"}, b"\xff\xff\xff", 400),
        ({"Content-Type": "application/json"}, b"{not json", 400),
        ({"Content-Type": "application/json"}, b"[1, 2]", 400),
        (
            {"Content-Type": "application/json"},
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
            400,
        ),
        ({"Content-Type": "application/json"}, b'{"resourceSpans": 5}', 400),
        ({"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, b"not gzip", 400),
        # mtime=0: the same bytes (and so the same test id) in every pytest-xdist worker
        (
            {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
            gzip.compress(b"\x0a", mtime=0)[:-4],
            400,
        ),
    ],
)
async def test_bad_requests_get_non_retryable_answers(
    tmp_path: Path, headers: dict[str, str], body: bytes, status: int
) -> None:
    async with (
        serving(tmp_path) as (plugin, sink),
        aiohttp.ClientSession() as session,
        session.post(url(plugin, "/v1/traces"), data=body, headers=headers) as r,
    ):
        assert r.status == status
        assert "Retry-After" not in r.headers
        payload = await r.read()
        if status == 400:
            kind = headers["Content-Type"]
            if kind == "application/json":
                assert orjson.loads(payload)["code"] == code_pb2.INVALID_ARGUMENT
            else:
                assert status_pb2.Status.FromString(payload).code == code_pb2.INVALID_ARGUMENT
    assert sink.records == []
    counters = plugin.counters()
    assert counters["invalid_requests" if status == 400 else "unsupported_requests"] == 1


async def test_too_large_bodies_and_gzip_bombs_get_413(tmp_path: Path) -> None:
    limit = 64 * 1024
    async with (
        serving(tmp_path, max_request_bytes=limit, max_decompressed_bytes=4 * limit) as (plugin, sink),
        aiohttp.ClientSession() as session,
    ):
        headers = {"Content-Type": "application/x-protobuf"}
        async with session.post(url(plugin, "/v1/traces"), data=bytes(limit + 1), headers=headers) as r:
            assert r.status == 413

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield bytes(limit // 2)

        async with session.post(url(plugin, "/v1/traces"), data=chunks(), headers=headers) as r:  # chunked
            assert r.status == 413
        bomb = gzip.compress(bytes(100 * limit))  # ~6 KiB that inflate to 6.4 MiB
        assert len(bomb) < limit
        gz = {**headers, "Content-Encoding": "gzip"}
        async with session.post(url(plugin, "/v1/traces"), data=bomb, headers=gz) as r:
            assert r.status == 413
            assert status_pb2.Status.FromString(await r.read()).code == code_pb2.RESOURCE_EXHAUSTED
        # Exactly at the bound is fine.
        request = logs_service_pb2.ExportLogsServiceRequest()
        request.resource_logs.add().scope_logs.add().log_records.add(body={"string_value": "a" * 100})
        async with session.post(url(plugin, "/v1/logs"), data=request.SerializeToString(), headers=headers) as r:
            assert r.status == 200
    assert plugin.counters()["too_large_requests"] == 3
    assert len(sink.records) == 1


async def test_grpc_bad_and_too_large_messages(tmp_path: Path) -> None:
    limit = 64 * 1024
    async with (
        serving(tmp_path, max_request_bytes=limit, max_decompressed_bytes=limit) as (plugin, sink),
        grpc.aio.insecure_channel(grpc_target(plugin), options=[("grpc.max_send_message_length", -1)]) as channel,
    ):
        raw = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await raw(b"\xff\xff\xff")
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as big:
            await raw(bytes(limit + 1), compression=grpc.Compression.Gzip)
        assert big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not _retry_delay(big.value)  # without RetryInfo: OTLP clients do not retry it
    assert plugin.counters()["invalid_requests"] == 1 and sink.records == []


async def test_paths_and_methods(tmp_path: Path) -> None:
    async with serving(tmp_path, signals=["traces"]) as (plugin, _), aiohttp.ClientSession() as session:
        async with session.get(url(plugin, "/v1/traces")) as r:
            assert r.status == 405
        async with session.post(url(plugin, "/v1/other"), data=b"") as r:
            assert r.status == 404
        async with session.post(url(plugin, "/v1/logs"), data=b"") as r:  # a signal not served
            assert r.status == 404
        async with grpc.aio.insecure_channel(grpc_target(plugin)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await logs_service_pb2_grpc.LogsServiceStub(channel).Export(logs_service_pb2.ExportLogsServiceRequest())
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert Otlp.emitted_kinds(plugin.config) == frozenset({TRACES})


# -- durability and backpressure ----------------------------------------------------------------------------------


def _retry_delay(err: grpc.aio.AioRpcError) -> float:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return 0.0


def one_span_request(name: str = "s") -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name=name)
    return request


async def test_the_answer_waits_until_the_data_is_safe(tmp_path: Path) -> None:
    sink = Sink()
    sink.release_acks = False
    async with serving(tmp_path, sink) as (plugin, _), aiohttp.ClientSession() as session:
        headers = {"Content-Type": "application/x-protobuf"}
        post = asyncio.ensure_future(
            session.post(url(plugin, "/v1/traces"), data=one_span_request().SerializeToString(), headers=headers)
        )
        await wait_for(lambda: len(sink.held) == 1)
        await asyncio.sleep(0.2)  # the request is in the pipeline; the client must still be waiting
        assert not post.done()
        sink.release_held()
        response = await asyncio.wait_for(post, 5)
        assert response.status == 200
        response.release()


async def test_not_durable_in_time_is_retryable_on_both_transports(tmp_path: Path) -> None:
    sink = Sink()
    sink.release_acks = False
    async with (
        serving(tmp_path, sink, ack_timeout=0.3, retry_after=2.5) as (plugin, _),
        aiohttp.ClientSession() as session,
    ):
        headers = {"Content-Type": "application/x-protobuf"}
        async with session.post(
            url(plugin, "/v1/traces"), data=one_span_request().SerializeToString(), headers=headers
        ) as r:
            assert r.status == 503 and r.headers["Retry-After"] == "3"
            assert status_pb2.Status.FromString(await r.read()).code == code_pb2.UNAVAILABLE
        async with grpc.aio.insecure_channel(grpc_target(plugin)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await trace_service_pb2_grpc.TraceServiceStub(channel).Export(one_span_request())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert _retry_delay(err.value) == 2.5
    assert plugin.counters()["ack_timeouts"] == 2


async def test_a_full_pipeline_is_answered_retryable(tmp_path: Path) -> None:
    sink = Sink()
    sink.open.clear()  # the downstream takes nothing: emit waits
    async with (
        serving(tmp_path, sink, backpressure_timeout=0.2) as (plugin, _),
        aiohttp.ClientSession() as session,
    ):
        started = time.monotonic()
        headers = {"Content-Type": "application/json"}
        body = orjson.dumps(json_trace_request(json_span()))
        async with session.post(url(plugin, "/v1/traces"), data=body, headers=headers) as r:
            assert r.status == 503 and int(r.headers["Retry-After"]) >= 1
            assert (await r.json())["code"] == code_pb2.UNAVAILABLE
        assert time.monotonic() - started < 3
        async with grpc.aio.insecure_channel(grpc_target(plugin)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await trace_service_pb2_grpc.TraceServiceStub(channel).Export(one_span_request())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and _retry_delay(err.value) == 1.0
        assert plugin.counters()["refused_backpressure"] == 2
        sink.open.set()
        async with session.post(url(plugin, "/v1/traces"), data=body, headers=headers) as r:
            assert r.status == 200  # room again: accepted


async def test_too_many_requests_at_once_are_refused_at_once(tmp_path: Path) -> None:
    sink = Sink()
    sink.release_acks = False
    async with (
        serving(tmp_path, sink, max_concurrent_requests=1, ack_timeout=5) as (plugin, _),
        aiohttp.ClientSession() as session,
    ):
        headers = {"Content-Type": "application/x-protobuf"}
        body = one_span_request().SerializeToString()
        first = asyncio.ensure_future(session.post(url(plugin, "/v1/traces"), data=body, headers=headers))
        await wait_for(lambda: len(sink.held) == 1)
        async with session.post(url(plugin, "/v1/traces"), data=body, headers=headers) as r:
            assert r.status == 503 and "Retry-After" in r.headers
        assert plugin.counters()["refused_busy"] == 1
        sink.release_held()
        assert (await first).status == 200


async def test_a_stopping_input_answers_retryable(tmp_path: Path) -> None:
    async with serving(tmp_path) as (plugin, _):
        receiver = plugin.receiver
        assert receiver is not None
        receiver.stopping = True
        async with grpc.aio.insecure_channel(grpc_target(plugin)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await trace_service_pb2_grpc.TraceServiceStub(channel).Export(one_span_request())
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert plugin.counters()["refused_stopping"] == 1


# -- through the runtime ------------------------------------------------------------------------------------------


async def test_through_the_runtime_the_answer_waits_for_delivery_or_disk(tmp_path: Path) -> None:
    capture = Capture()
    registry = load_registry()
    registry.add(capture.output)
    grpc_port, http_port = free_port(), free_port()
    config = parse_config(
        f"""
inputs:
  otel: {{type: otlp, grpc_listen: "127.0.0.1:{grpc_port}", http_listen: "127.0.0.1:{http_port}"}}
outputs:
  slow: {{type: capture, inputs: [otel], delay: 0.4}}
  stuck:
    type: capture
    inputs: [otel]
    delay: 3600
    buffer: {{type: disk, max_bytes: 64MiB, fsync: always}}
""",
        "c.yaml",
        registry,
        environ={},
    )
    runtime = Runtime(tmp_path, HostFacts("h"))
    await runtime.apply(config.graph)
    try:
        await wait_for(lambda: runtime.stats["otel"].state == "running")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            await wait_for(lambda: _ready(channel), timeout=5)
            sent = time.monotonic()
            await trace_service_pb2_grpc.TraceServiceStub(channel).Export(one_span_request("durable"))
            assert time.monotonic() - sent >= 0.4  # the memory-buffered output had to deliver it first
        assert [r["name"] for r in capture("slow")] == ["durable"]
        assert capture("stuck") == []  # safe on disk is enough there
    finally:
        await runtime.shutdown(1)


async def _ready(channel: grpc.aio.Channel) -> bool:
    try:
        await asyncio.wait_for(channel.channel_ready(), 0.5)
    except TimeoutError:
        return False
    return True


def test_config_checks() -> None:
    with pytest.raises(ValueError, match="both null"):
        OtlpConfig(type="otlp", grpc_listen=None, http_listen=None)
    with pytest.raises(ValueError, match="must differ"):
        OtlpConfig(type="otlp", grpc_listen="127.0.0.1:4317", http_listen="127.0.0.1:4317")
    with pytest.raises(ValueError, match="HOST:PORT"):
        OtlpConfig(type="otlp", grpc_listen="localhost")
    with pytest.raises(ValueError, match="max_decompressed_bytes"):
        OtlpConfig(type="otlp", max_request_bytes="8MiB", max_decompressed_bytes="4MiB")
    assert OtlpConfig(type="otlp", grpc_listen=":4317").grpc_listen == "127.0.0.1:4317"
    assert Otlp.emitted_kinds(OtlpConfig(type="otlp")) == frozenset({TRACES, METRICS, LOGS})


async def test_the_http_listen_backlog_survives_the_server_start(tmp_path: Path) -> None:
    """aiohttp's SockSite would call listen(128) again over the socket's own 1024."""
    async with serving(tmp_path) as (plugin, _):
        assert plugin.http is not None
        expected = min(LISTEN_BACKLOG, int(Path("/proc/sys/net/core/somaxconn").read_text()))
        assert listen_backlog(plugin.http.port) == expected


@pytest.mark.parametrize("turns", range(6))
async def test_stopping_the_http_server_closes_the_connections_being_accepted(tmp_path: Path, turns: int) -> None:
    # asyncio 3.11 leaves a socket accepted just before its server closes open and unowned (collector/accepting.py).
    async with serving(tmp_path, grpc_listen=None) as (plugin, _):
        assert plugin.http is not None
        leftover = await left_open_by_stop(plugin.http.port, plugin.http.stop, turns)
        assert leftover == set(), f"accepted sockets still open after stop(): {leftover}"
