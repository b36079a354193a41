"""The `otlp` input with the OpenTelemetry JS SDK and its OTLP exporters (gRPC and HTTP/protobuf) as clients:
spans, a log record in a span's context and a delta counter, exported by the real Node.js packages
(tests/peers/node/otel.js, pinned by package-lock.json), arrive as records with their ids and resource."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from collector.api import HostFacts
from collector.config import parse_config
from collector.events import Metric
from collector.registry import load_registry
from collector.runtime import Runtime
from collector.testing import Capture, free_port, wait_for

NODE_PEER = Path(__file__).resolve().parents[1] / "peers" / "node"


@pytest.fixture(scope="session")
def otel_js() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed for the OpenTelemetry JS SDK")
    if not (NODE_PEER / "node_modules" / "@opentelemetry" / "sdk-trace-base").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_PEER, check=True, timeout=300
        )
    return NODE_PEER / "otel.js"


async def node_send(script: Path, **options: Any) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(script), json.dumps(options), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    report: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return report


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_node_sdk_sends_all_three_signals(tmp_path: Path, otel_js: Path, protocol: str) -> None:
    capture = Capture()
    registry = load_registry()
    registry.add(capture.output)
    grpc_port, http_port = free_port(), free_port()
    config = parse_config(
        f"""
inputs:
  otel: {{type: otlp, grpc_listen: "127.0.0.1:{grpc_port}", http_listen: "127.0.0.1:{http_port}"}}
outputs:
  got: {{type: capture, inputs: [otel]}}
""",
        "c.yaml",
        registry,
        environ={},
    )
    runtime = Runtime(tmp_path, HostFacts("h"))
    await runtime.apply(config.graph)
    try:
        await wait_for(lambda: runtime.stats["otel"].state == "running")
        report = await node_send(otel_js, protocol=protocol, grpcPort=grpc_port, httpPort=http_port)
    finally:
        await runtime.shutdown(2)

    assert (report["traces"], report["logs"], report["metrics"]) == (0, 0, "ok"), report
    records = capture("got")
    spans = {r["name"]: r for r in records if isinstance(r, dict) and "span_id" in r and "name" in r}
    assert set(spans) == {"GET /cart", "db"}
    server, db = spans["GET /cart"], spans["db"]
    assert server["trace_id"] == db["trace_id"] == report["traceId"]
    assert (server["span_id"], db["span_id"]) == (report["spans"]["GET /cart"], report["spans"]["db"])
    assert db["parent_span_id"] == server["span_id"] and server["parent_span_id"] == ""
    assert (server["kind"], db["kind"]) == ("server", "client")
    assert server["resource"]["service.name"] == "node-shop"
    assert server["attributes"] == {"http.method": "GET"}
    assert server["scope"]["name"] == "node-test"

    (log,) = [r for r in records if isinstance(r, dict) and r.get("message") == "cart viewed"]
    assert (log["trace_id"], log["span_id"]) == (report["traceId"], server["span_id"])
    assert log["attributes"] == {"items": 2} and log["severity_text"] == "INFO"

    (metric,) = [r for r in records if isinstance(r, Metric)]
    assert (metric.name, metric.type, metric.value, metric.tags["region"]) == ("carts", "counter", 4, "eu")
