"""OpenTelemetry and X-Ray SDK spans of one trace, end to end: `collector run` as a process (the installed wheel),
the real Python OpenTelemetry SDK (OTLP/gRPC exporter, X-Ray id generator) into the `otlp` input, the real
aws-xray-sdk (UDP) into the `xray` input, one `xray` output into moto and a `trace_index`.

Both kinds must be found by BatchGetTraces under one trace id and shown together by `collector trace`.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from collector.testing import free_port, wait_for_sync
from tests.e2e.conftest import Collector, cli
from tests.e2e.test_xray_trace import app_recorder
from tests.moto import MotoServer

pytest.importorskip("collector_plugins.inputs.otlp", reason="the otlp input is not in this tree yet")


@pytest.mark.slow
def test_otel_spans_and_xray_segments_of_one_trace_travel_and_show_together(
    collector: Collector, moto: MotoServer, tmp_path: Path
) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    udp, grpc_port, http_port = free_port(socket.SOCK_DGRAM), free_port(), free_port()
    aws = f"region: {moto.region}, endpoint_url: {moto.endpoint_url}"
    collector.write_config(
        f"""
inputs:
  xray: {{type: xray, listen: "udp:127.0.0.1:{udp} tcp:127.0.0.1:{free_port()}", sampling_proxy: false}}
  otlp: {{type: otlp, grpc_listen: "127.0.0.1:{grpc_port}", http_listen: "127.0.0.1:{http_port}"}}
outputs:
  traces: {{type: xray, inputs: [xray, otlp], {aws}, indexed_attributes: [order.id]}}
  recent: {{type: trace_index, inputs: [xray, otlp]}}
"""
    )
    collector.start()

    provider = TracerProvider(
        resource=Resource.create({"service.name": "checkout", "service.version": "2.0.0"}),
        id_generator=AwsXRayIdGenerator(),
    )
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"127.0.0.1:{grpc_port}", insecure=True)))
    tracer = provider.get_tracer("e2e")
    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "POST")
        root.set_attribute("http.response.status_code", 502)
        root.set_attribute("order.id", "o-17")
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as call:
            call.set_attribute("peer.service", "payments")
            call.set_status(Status(StatusCode.ERROR, "card declined"))
        context = root.get_span_context()
    provider.shutdown()
    w3c = f"{context.trace_id:032x}"
    xray_id = f"1-{w3c[:8]}-{w3c[8:]}"
    root_id = f"{context.span_id:016x}"

    # A service still on the X-Ray SDK, called by the OpenTelemetry one: same trace, parent = the server span.
    with app_recorder(udp) as xray:
        legacy = xray.begin_segment("legacy-payments", traceid=xray_id, parent_id=root_id, sampling=1)
        xray.end_segment()

    client = moto.client("xray")

    def stored() -> dict[str, dict]:
        traces = client.batch_get_traces(TraceIds=[xray_id])["Traces"]
        return {s["Id"]: json.loads(s["Document"]) for t in traces for s in t["Segments"]}

    wait_for_sync(lambda: len(stored()) == 3, timeout=20)
    documents = stored()
    server = documents[root_id]
    assert server["name"] == "checkout" and server["trace_id"] == xray_id and "type" not in server
    assert server["http"]["response"]["status"] == 502 and server["fault"] is True
    assert server["annotations"] == {"order_id": "o-17"} and server["service"] == {"version": "2.0.0"}
    (charge,) = [d for d in documents.values() if d.get("type") == "subsegment"]
    assert (charge["name"], charge["namespace"], charge["parent_id"]) == ("payments", "remote", root_id)
    assert charge["cause"]["exceptions"][0]["message"] == "card declined"
    assert documents[legacy.id]["parent_id"] == root_id

    wait_for_sync(lambda: collector.component("recent")["sent_events"] >= 3, timeout=20)
    shown = cli("trace", xray_id, "-c", str(collector.config), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    entries = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sorted(e["kind"] for e in entries) == ["segment", "span", "span"]
    assert {e["span"]["name"] for e in entries if e["kind"] == "span"} == {"POST /checkout", "charge"}
    text = cli("trace", w3c, "-c", str(collector.config))
    assert text.returncode == 0 and "1 segments, 2 spans" in text.stdout and "segment legacy-payments" in text.stdout
