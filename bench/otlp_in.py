"""The `otlp` input on one core: spans/s, metric points/s and log records/s over OTLP/gRPC and OTLP/HTTP.

    python -m bench.otlp_in                              # every signal and transport, ~3 s each
    python -m bench.otlp_in --signal traces --transport grpc --seconds 5 --concurrency 8

The collector runs as its own process (`collector run`, the installed CLI) pinned to `--cpu` (default 0):
`otlp` input → `blackhole` output with a memory buffer, so an answer "OK" means the batch was delivered to the
blackhole. This process, pinned to `--client-cpu` (default 1), is the load: `--concurrency` clients send
pre-built, pre-serialised requests of `--batch` items each (spans with 6 attributes under a resource of 3;
log records with a body, 3 attributes and trace context; gauge points with 2 attributes), each waiting for its
answer before the next. The clients cycle through `--distinct` different requests (fresh ids; the per-item
values `url.path` / `order.id` / the log body and gauge value unique across all of them), so the receiver's
attribute cache (plugins/common/otlp/values.py) meets what it meets in the field: most attribute values repeat,
one per item does not. Prints items/s (answered OK), MiB/s of request bodies, and the collector's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from collector.testing import free_port


def trace_request(n: int, first: int = 0) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (("service.name", "checkout"), ("host.name", "node-1"), ("cloud.platform", "aws_ec2")):
        resource_spans.resource.attributes.add(key=key).value.string_value = value
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "opentelemetry.instrumentation.flask"
    scope_spans.scope.version = "0.48b0"
    now = time.time_ns()
    for i in range(n):
        span = scope_spans.spans.add(
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            parent_span_id=os.urandom(8) if i % 4 else b"",
            name="GET /api/orders/{id}",
            kind=2,
            start_time_unix_nano=now,
            end_time_unix_nano=now + 1_500_000,
        )
        attrs = span.attributes
        attrs.add(key="http.request.method").value.string_value = "GET"
        attrs.add(key="url.path").value.string_value = f"/api/orders/{first + i}"
        attrs.add(key="http.route").value.string_value = "/api/orders/{id}"
        attrs.add(key="http.response.status_code").value.int_value = 200
        attrs.add(key="server.address").value.string_value = "shop.example.com"
        attrs.add(key="user_agent.original").value.string_value = "python-requests/2.32"
        span.status.code = 1
    return request.SerializeToString()


def log_request(n: int, first: int = 0) -> bytes:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "checkout"
    scope_logs = resource_logs.scope_logs.add()
    scope_logs.scope.name = "app"
    now = time.time_ns()
    for i in range(n):
        record = scope_logs.log_records.add(
            time_unix_nano=now,
            observed_time_unix_nano=now,
            severity_number=9,
            severity_text="INFO",
            trace_id=os.urandom(16),
            span_id=os.urandom(8),
            flags=1,
        )
        record.body.string_value = f"order {first + i} paid by customer 4711 in 12.5 ms via card ending 0042"
        record.attributes.add(key="order.id").value.int_value = first + i
        record.attributes.add(key="code.function").value.string_value = "pay"
        record.attributes.add(key="thread.name").value.string_value = "worker-3"
    return request.SerializeToString()


def metric_request(n: int, first: int = 0) -> bytes:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.add(key="service.name").value.string_value = "checkout"
    metric = resource_metrics.scope_metrics.add().metrics.add(name="queue.depth", unit="{item}")
    now = time.time_ns()
    for i in range(n):
        point = metric.gauge.data_points.add(time_unix_nano=now, as_double=float(first + i))
        point.attributes.add(key="queue").value.string_value = f"q{i % 50}"
        point.attributes.add(key="region").value.string_value = "eu-west-1"
    return request.SerializeToString()


BUILDERS = {"traces": trace_request, "logs": log_request, "metrics": metric_request}
GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
}
CONFIG = """data_dir: {data_dir}
api: {{enabled: false}}
inputs:
  otel:
    type: otlp
    grpc_listen: 127.0.0.1:{grpc_port}
    http_listen: 127.0.0.1:{http_port}
    max_concurrent_requests: 256
    max_in_flight_bytes: 256MiB
outputs:
  sink:
    type: blackhole
    inputs: [otel]
"""


async def _load(signal: str, transport: str, port: int, bodies: list[bytes], seconds: float, concurrency: int) -> int:
    """Requests answered OK within `seconds` (after a warm-up request per client), cycling through `bodies`."""
    body = bodies[0]
    done = 0
    deadline = 0.0
    if transport == "grpc":
        import grpc

        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 20)
            call = channel.unary_unary(GRPC_METHODS[signal])

            async def grpc_client() -> None:
                nonlocal done
                while time.monotonic() < deadline:
                    await call(bodies[done % len(bodies)])
                    done += 1

            await call(body)
            deadline = time.monotonic() + seconds
            await asyncio.gather(*(grpc_client() for _ in range(concurrency)))
        return done
    import aiohttp

    url = f"http://127.0.0.1:{port}/v1/{signal}"
    headers = {"Content-Type": "application/x-protobuf"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def http_client() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                async with session.post(url, data=bodies[done % len(bodies)], headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"answered {r.status}")
                done += 1

        for _ in range(200):  # the server may still be starting
            try:
                async with session.post(url, data=body, headers=headers) as r:
                    await r.read()
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(http_client() for _ in range(concurrency)))
    return done


def _peak_rss(pid: int) -> int:
    """VmHWM: the process's peak resident set, bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run(
    signal: str, transport: str, batch: int, seconds: float, concurrency: int, cpu: int, distinct: int = 64
) -> dict[str, Any]:
    bodies = [BUILDERS[signal](batch, k * batch) for k in range(distinct)]
    grpc_port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="bench-otlp-") as data_dir:
        config = Path(data_dir) / "collector.yaml"
        config.write_text(CONFIG.format(data_dir=data_dir, grpc_port=grpc_port, http_port=http_port))
        collector = Path(sys.executable).parent / "collector"
        proc = subprocess.Popen(
            [str(collector), "run", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
        try:
            watched = psutil.Process(proc.pid)
            port = grpc_port if transport == "grpc" else http_port
            started_cpu = sum(watched.cpu_times()[:2])
            started = time.monotonic()
            requests = asyncio.run(_load(signal, transport, port, bodies, seconds, concurrency))
            elapsed = time.monotonic() - started
            cpu_used = sum(watched.cpu_times()[:2]) - started_cpu
            rss = _peak_rss(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    items = requests * batch
    # Elapsed includes the warm-up requests, which are not counted: a slight underestimate.
    return {
        "signal": signal,
        "transport": transport,
        "items_per_second": round(items / elapsed),
        "mib_per_second": round(requests * len(bodies[0]) / elapsed / 2**20, 1),
        "collector_cpu_share": round(cpu_used / elapsed, 2),
        "peak_rss_mib": round(rss / 2**20),
        "request_bytes": len(bodies[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signal", choices=sorted(BUILDERS), action="append")
    parser.add_argument("--transport", choices=["grpc", "http"], action="append")
    parser.add_argument("--batch", type=int, default=1000, help="items per request")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--distinct", type=int, default=64, help="different requests the clients cycle through")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--cpu", type=int, default=0, help="the collector's CPU")
    parser.add_argument("--client-cpu", type=int, default=1, help="the load generator's CPU")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.client_cpu})
    print(f"{'signal':8} {'transport':9} {'items/s':>10} {'MiB/s':>7} {'cpu':>5} {'rss MiB':>8}")
    for signal in args.signal or ["traces", "metrics", "logs"]:
        for transport in args.transport or ["grpc", "http"]:
            r = run(signal, transport, args.batch, args.seconds, args.concurrency, args.cpu, args.distinct)
            print(
                f"{signal:8} {transport:9} {r['items_per_second']:>10} {r['mib_per_second']:>7} "
                f"{r['collector_cpu_share']:>5} {r['peak_rss_mib']:>8}",
                flush=True,
            )


if __name__ == "__main__":
    main()
