"""The aggregator path: our `otlp` output into our own `otlp` input, over OTLP/HTTP and OTLP/gRPC, for all three
signals. The real OpenTelemetry SDK exporters send to a front `otlp` input; an `otlp` output relays what it
receives to a back `otlp` input; the records that come out of the back input must be the ones the SDK sent,
with their ids, kinds, resources, bodies, attributes and metric values intact."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import SpanKind

from collector.api import HostFacts
from collector.config import parse_config
from collector.events import Metric
from collector.registry import load_registry
from collector.runtime import Runtime
from collector.testing import Capture, free_port, wait_for
from tests.plugins.otlp_sdk import LogSdk, Sdk, TraceSdk


def _config(protocol: str, front: tuple[int, int], back: tuple[int, int]) -> str:
    back_endpoint = f"http://127.0.0.1:{back[0] if protocol == 'grpc' else back[1]}"
    return f"""
inputs:
  front: {{type: otlp, grpc_listen: "127.0.0.1:{front[0]}", http_listen: "127.0.0.1:{front[1]}"}}
  back: {{type: otlp, grpc_listen: "127.0.0.1:{back[0]}", http_listen: "127.0.0.1:{back[1]}"}}
outputs:
  relay:
    type: otlp
    inputs: [front]
    protocol: {protocol}
    endpoint: "{back_endpoint}"
    batch: {{timeout: 50ms}}
  got: {{type: capture, inputs: [back]}}
"""


def _send_all_three(front_grpc: int) -> tuple[list[Any], list[Any]]:
    """The SDK's own gRPC exporters send spans, a log and a counter to the front input (blocking)."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    target = f"127.0.0.1:{front_grpc}"
    traces = TraceSdk({"service.name": "checkout"})
    with (
        traces.tracer.start_as_current_span("GET /pay", kind=SpanKind.SERVER, attributes={"http.status_code": 200}),
        traces.tracer.start_as_current_span("charge", kind=SpanKind.CLIENT, attributes={"amount": 12.5}),
    ):
        pass
    spans = list(traces.exporter.get_finished_spans())
    assert OTLPSpanExporter(target, insecure=True).export(spans).name == "SUCCESS"

    logs = LogSdk({"service.name": "checkout"})
    with traces.tracer.start_as_current_span("log-parent"):
        logs.logger.emit(body="paid", severity_text="INFO", attributes={"order": 7})
    finished = list(logs.exporter.get_finished_logs())
    assert OTLPLogExporter(target, insecure=True).export(finished).name == "SUCCESS"

    meters = Sdk(delta=True)
    meters.meter.create_counter("orders").add(3, {"route": "/pay"})
    assert OTLPMetricExporter(target, insecure=True).export(meters.reader.get_metrics_data()).name == "SUCCESS"
    for sdk in (traces, logs, meters):
        sdk.close()
    return spans, finished


@pytest.mark.parametrize("protocol", ["http", "grpc"])
async def test_otlp_output_into_otlp_input_keeps_every_signal(tmp_path: Path, protocol: str) -> None:
    capture = Capture()
    registry = load_registry()
    registry.add(capture.output)
    front, back = (free_port(), free_port()), (free_port(), free_port())
    config = parse_config(_config(protocol, front, back), "c.yaml", registry, environ={})
    runtime = Runtime(tmp_path, HostFacts("h"))
    await runtime.apply(config.graph)
    try:
        await wait_for(lambda: all(runtime.stats[n].state == "running" for n in ("front", "back")))
        spans, logs = await asyncio.to_thread(_send_all_three, front[0])
        got = lambda: capture("got")  # noqa: E731
        await wait_for(lambda: len([r for r in got() if isinstance(r, Metric)]) == 1, timeout=15)
        await wait_for(lambda: len([r for r in got() if isinstance(r, dict) and "span_id" in r]) >= 3, timeout=15)
    finally:
        await runtime.shutdown(2)

    records = capture("got")
    by_name = {r["name"]: r for r in records if isinstance(r, dict) and r.get("kind") in ("server", "client")}
    sent = {s.name: s for s in spans}
    for name in ("GET /pay", "charge"):
        context = sent[name].context
        assert by_name[name]["trace_id"] == format(context.trace_id, "032x")
        assert by_name[name]["span_id"] == format(context.span_id, "016x")
        assert by_name[name]["resource"]["service.name"] == "checkout"
        assert by_name[name]["start_time_unix_nano"] == sent[name].start_time
        assert by_name[name]["end_time_unix_nano"] == sent[name].end_time
    assert by_name["GET /pay"]["kind"] == "server" and by_name["GET /pay"]["attributes"] == {"http.status_code": 200}
    assert by_name["charge"]["parent_span_id"] == by_name["GET /pay"]["span_id"]
    assert by_name["charge"]["attributes"] == {"amount": 12.5}

    log = next(r for r in records if isinstance(r, dict) and r.get("message") == "paid")
    assert log["attributes"] == {"order": 7} and log["severity_text"] == "INFO"
    assert log["trace_id"] == format(logs[0].log_record.trace_id, "032x")
    assert log["span_id"] == format(logs[0].log_record.span_id, "016x")

    (metric,) = [r for r in records if isinstance(r, Metric)]
    assert (metric.name, metric.type, metric.value) == ("orders", "counter", 3)
    assert metric.tags["route"] == "/pay"
