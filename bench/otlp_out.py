"""The `otlp` output on one core: spans/s, log records/s and metric points/s sent over OTLP/HTTP and OTLP/gRPC.

    python -m bench.otlp_out                                   # every signal over both protocols
    python -m bench.otlp_out --signal traces --protocol grpc --records 400000

The records go through the real output driver (memory buffer, batching within the output's limits) into
`OtlpOutput.send`: encoding to protobuf, serialization, gzip (`--compression`) and the transport. The
receiving sink is a minimal OTLP server in its own process (pinned to another CPU when there is one): it
reads each request's bytes and answers an empty success without decoding, so the figure is what the sender
costs. The sending process is pinned to `--cpu`. Records are built before the clock starts:

- traces: spans as the `otlp` input makes them (W3C ids, 8 attributes, a resource and a scope shared by all);
- logs: file lines (`message` of ~160 bytes, two fields), which become LogRecords with attributes;
- metrics: counters and gauges with two tags each.

Printed per run: records, seconds, records/s, request MiB/s (encoded, before compression), requests, peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from collector.buffer.memory import MemoryBuffer
from collector.channel import Channel
from collector.dlq import DeadLetterQueue, dlq_dir
from collector.events import Batch, Metric
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner
from collector.stats import ComponentStats
from collector.testing import component_context, free_port, wait_for
from collector_plugins.outputs.otlp.output import OtlpConfig, OtlpOutput

RESOURCE = {"service.name": "checkout", "service.version": "1.4.2", "host.name": "node-1"}
SCOPE = {"name": "io.opentelemetry.flask", "version": "0.45b0", "attributes": {}}


def spans(n: int) -> list[dict[str, Any]]:
    now = time.time_ns()
    out = []
    for i in range(n):
        start = now - 5_000_000 + i
        out.append(
            {
                "format": "otlp",
                "trace_id": f"{i // 8 + 1:032x}",
                "span_id": f"{i + 1:016x}",
                "parent_span_id": f"{i:016x}" if i % 8 else "",
                "trace_state": "",
                "flags": 1,
                "name": "GET /api/cart/{id}",
                "kind": "server",
                "start_time": start / 1e9,
                "end_time": (start + 4_000_000) / 1e9,
                "start_time_unix_nano": start,
                "end_time_unix_nano": start + 4_000_000,
                "attributes": {
                    "http.request.method": "GET",
                    "http.route": "/api/cart/{id}",
                    "http.response.status_code": 200,
                    "url.path": f"/api/cart/{i}",
                    "server.address": "checkout.internal",
                    "server.port": 8080,
                    "user_agent.original": "python-requests/2.32",
                    "network.protocol.version": "1.1",
                },
                "events": [],
                "links": [],
                "status": {"code": 0, "message": ""},
                "resource": RESOURCE,
                "scope": SCOPE,
                "dropped_attributes_count": 0,
                "dropped_events_count": 0,
                "dropped_links_count": 0,
                "timestamp": (start + 4_000_000) / 1e9,
            }
        )
    return out


def logs(n: int) -> list[dict[str, Any]]:
    now = time.time()
    line = "GET /api/cart/{} 200 4.1ms user=8f2c1d session=a1b2c3d4e5 ua=python-requests/2.32 ref=https://shop/x"
    return [
        {"timestamp": now + i * 1e-6, "message": line.format(i), "level": "info", "file": "/var/log/app.log"}
        for i in range(n)
    ]


def metrics(n: int) -> list[Metric]:
    now = time.time()
    return [
        Metric("http.requests" if i % 2 else "queue.depth", "counter" if i % 2 else "gauge", float(i % 97),
               {"route": f"/r{i % 50}", "code": "200"}, now, interval=10.0)
        for i in range(n)
    ]  # fmt: skip


BUILDERS = {"traces": spans, "logs": logs, "metrics": metrics}


# -- the sink (its own process) ---------------------------------------------------------------------------


def sink(protocol: str, port: int) -> None:
    """Answer every export with an empty success, without decoding; print a line when ready."""

    async def main() -> None:
        if protocol == "http":
            from aiohttp import web

            async def handle(request: web.Request) -> web.Response:
                await request.read()
                return web.Response(body=b"", content_type="application/x-protobuf")

            app = web.Application(client_max_size=64 * 1024 * 1024)
            for signal in ("traces", "logs", "metrics"):
                app.router.add_post(f"/v1/{signal}", handle)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
        else:
            import grpc

            services = {
                "opentelemetry.proto.collector.trace.v1.TraceService",
                "opentelemetry.proto.collector.logs.v1.LogsService",
                "opentelemetry.proto.collector.metrics.v1.MetricsService",
            }
            server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
            for service in services:
                server.add_generic_rpc_handlers(
                    (
                        grpc.method_handlers_generic_handler(
                            service, {"Export": grpc.unary_unary_rpc_method_handler(_empty)}
                        ),
                    )
                )
            server.add_insecure_port(f"127.0.0.1:{port}")
            await server.start()
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


async def _empty(request: bytes, context: Any) -> bytes:
    return b""


# -- the sender ---------------------------------------------------------------------------------------------


async def send_all(
    protocol: str, port: int, signal: str, records: list[Any], compression: str, data_dir: Path
) -> dict[str, Any]:
    stats = ComponentStats("out", "outputs", "otlp")
    buffer = MemoryBuffer(max_events=10**7, max_bytes=10**11, when_full="block", on_drop=stats.drop)
    channel = Channel("out", max_events=100_000)
    dlq = DeadLetterQueue(dlq_dir(data_dir, "out"), "out", 10**9)
    runner = OutputRunner("out", channel, buffer, dlq, stats, logging.getLogger("bench"), RepeatLimiter(60))
    config = OtlpConfig.model_validate(
        {"type": "otlp", "inputs": ["x"], "protocol": protocol, "endpoint": f"http://127.0.0.1:{port}",
         "compression": compression, "concurrency": 4}
    )  # fmt: skip
    output = OtlpOutput(config, component_context("out", data_dir))
    await output.start()
    batches = [records[i : i + 1000] for i in range(0, len(records), 1000)]
    started = time.perf_counter()
    cpu = time.process_time()
    runner.start_intake()
    task = asyncio.create_task(runner.deliver(output, config, asyncio.Event()))
    for chunk in batches:
        await channel.send(Batch(signal, chunk, nbytes=len(chunk) * 200))  # type: ignore[arg-type]
    await wait_for(lambda: stats.sent_events + sum(stats.dropped.values()) >= len(records), timeout=600, interval=0.01)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await output.stop()
    counters = output.counters()
    assert counters["items_sent"] == len(records), (counters, len(records))
    return {
        "protocol": protocol,
        "signal": signal,
        "compression": compression,
        "records": len(records),
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "records_per_s": round(len(records) / seconds),
        "mib_per_s": round(counters["bytes_sent"] / seconds / 2**20, 1),
        "requests": counters["requests"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run(protocol: str, signal: str, n: int, compression: str, cpu: int) -> dict[str, Any]:
    import tempfile

    port = free_port()
    sink_cpu = ({1, 0} - {cpu}).pop() if (os.cpu_count() or 1) > 1 else cpu
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.otlp_out", "--sink", protocol, "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {sink_cpu}),
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        records = BUILDERS[signal](n)
        with tempfile.TemporaryDirectory(prefix="bench-otlp-") as data_dir:
            return asyncio.run(send_all(protocol, port, signal, records, compression, Path(data_dir)))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=["http", "grpc", "all"], default="all")
    parser.add_argument("--signal", choices=["traces", "logs", "metrics", "all"], default="all")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--sink", choices=["http", "grpc"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        sink(args.sink, args.port)
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    protocols = ["http", "grpc"] if args.protocol == "all" else [args.protocol]
    signals = ["traces", "logs", "metrics"] if args.signal == "all" else [args.signal]
    for protocol in protocols:
        for signal in signals:
            r = run(protocol, signal, args.records, args.compression, args.cpu)
            print(
                f"otlp_out {protocol:<4} {signal:<7} {r['compression']}: {r['records']} records in {r['seconds']} s "
                f"-> {r['records_per_s']:,} records/s, {r['mib_per_s']} MiB/s encoded, {r['requests']} requests, "
                f"CPU {r['cpu_seconds']} s, peak RSS {r['peak_rss_mib']} MiB",
                flush=True,
            )


if __name__ == "__main__":
    main()
