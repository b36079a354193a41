"""OTLP spans → X-Ray segment documents on one core: spans/s converted, and spans/s through the `xray` output.

    python -m bench.xray_segments                      # both stages, 200,000 spans
    python -m bench.xray_segments --spans 500000 --stage convert

The spans are span records as the `otlp` input makes them (tests/plugins/otlp_spans.py), in the mix of a
web request: one server span (HTTP, current semantic conventions, an indexed attribute), one AWS SDK client
span (DynamoDB) and one internal span, each with a resource of 8 attributes (service, SDK, cloud, host).

- `convert`: `SegmentMapper.convert` alone (the documents' JSON included), CPU time of this process.
- `output`: the real `xray` output (record_size, then send in batches of 50 as the driver cuts them) against a
  blackhole PutTraceSegments endpoint in the same process (an aiohttp server answering
  `{"UnprocessedTraceSegments": []}`), so the figure includes botocore's request building and signing and the
  blackhole's reading; wall time, one core (`--cpu`).

Prints spans/s, MiB/s of documents and the peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from collector.api import ComponentContext, HostFacts
from collector.events import TRACES, Batch
from collector.testing import free_port
from collector_plugins.common.otlp.xray_segments import SegmentMapper, SegmentOptions
from collector_plugins.outputs.xray.output import XRayOutput, XRayOutputConfig
from tests.plugins.otlp_spans import span_record, xray_style_trace_id

RESOURCE = {
    "service.name": "shop",
    "service.version": "1.4.2",
    "telemetry.sdk.name": "opentelemetry",
    "telemetry.sdk.language": "python",
    "telemetry.sdk.version": "1.45.2",
    "cloud.provider": "aws",
    "cloud.platform": "aws_ec2",
    "host.id": "i-0123456789abcdef0",
}


def request_spans(n: int) -> list[dict[str, Any]]:
    """The three spans of request `n`."""
    trace = xray_style_trace_id()
    root = span_record(
        trace_id=trace,
        kind="server",
        name="POST /cart/{id}",
        resource=RESOURCE,
        attributes={
            "http.request.method": "POST",
            "http.route": "/cart/{id}",
            "url.scheme": "https",
            "url.path": f"/cart/{n}",
            "server.address": "shop.example",
            "http.response.status_code": 200 if n % 10 else 503,
            "user_agent.original": "Mozilla/5.0",
            "order.id": f"o-{n}",
        },
    )
    dynamo = span_record(
        trace_id=trace,
        parent=root["span_id"],
        kind="client",
        name="DynamoDB.GetItem",
        resource=RESOURCE,
        attributes={
            "rpc.system": "aws-api",
            "rpc.service": "DynamoDB",
            "rpc.method": "GetItem",
            "aws.region": "eu-west-1",
            "aws.request_id": f"REQ{n:012d}",
            "aws.dynamodb.table_names": ["carts"],
        },
    )
    step = span_record(
        trace_id=trace,
        parent=root["span_id"],
        kind="internal",
        name="price-cart",
        resource=RESOURCE,
        attributes={"items": n % 7},
    )
    return [root, dynamo, step]


def make_spans(count: int) -> list[dict[str, Any]]:
    spans: list[dict[str, Any]] = []
    n = 0
    while len(spans) < count:
        spans.extend(request_spans(n))
        n += 1
    return spans[:count]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_convert(spans: list[dict[str, Any]]) -> dict[str, Any]:
    mapper = SegmentMapper(SegmentOptions(indexed_attributes=frozenset({"order.id"})))
    started = time.process_time()
    total = 0
    now = time.time()
    for span in spans:
        total += len(mapper.convert(span, now))
    elapsed = time.process_time() - started
    return {"stage": "convert", "spans": len(spans), "seconds": elapsed, "bytes": total}


async def bench_output(spans: list[dict[str, Any]], batch_size: int) -> dict[str, Any]:
    received = {"documents": 0, "bytes": 0}

    async def put_trace_segments(request: web.Request) -> web.Response:
        body = await request.read()
        received["bytes"] += len(body)
        return web.json_response({"UnprocessedTraceSegments": []})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/TraceSegments", put_trace_segments)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    with tempfile.TemporaryDirectory(prefix="bench-xray-") as data_dir:
        config = XRayOutputConfig.model_validate(
            {
                "type": "xray",
                "inputs": ["otlp"],
                "region": "eu-west-1",
                "endpoint_url": f"http://127.0.0.1:{port}",
                "indexed_attributes": ["order.id"],
            }
        )
        ctx = ComponentContext("bench_xray", logging.getLogger("bench"), Path(data_dir), HostFacts("bench"))
        output = XRayOutput(config, ctx)
        await output.start()
        try:
            started = time.perf_counter()
            cpu = time.process_time()
            for i in range(0, len(spans), batch_size):
                batch = spans[i : i + batch_size]
                for span in batch:
                    output.record_size(span)  # the driver sizes every record before cutting requests
                result = await output.send(Batch(TRACES, batch))
                assert result.per_record is None and not result.reason, result
            elapsed = time.perf_counter() - started
            cpu_used = time.process_time() - cpu
        finally:
            await output.stop()
            await runner.cleanup()
    assert output.segments_sent == len(spans), output.counters()
    return {
        "stage": "output",
        "spans": len(spans),
        "seconds": elapsed,
        "cpu_seconds": cpu_used,
        "bytes": received["bytes"],
        "requests": output.requests,
    }


def report(result: dict[str, Any]) -> None:
    seconds = result["seconds"]
    rate = result["spans"] / seconds if seconds else 0.0
    mib = result["bytes"] / seconds / (1024 * 1024) if seconds else 0.0
    extra = f", {result['requests']} PutTraceSegments calls" if "requests" in result else ""
    print(
        f"xray_segments {result['stage']}: {result['spans']} spans in {seconds:.2f} s -> {rate:,.0f} spans/s, "
        f"{mib:.1f} MiB/s of documents{extra}, peak RSS {peak_rss_mib():.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--stage", choices=["convert", "output", "all"], default="all")
    parser.add_argument("--batch", type=int, default=50, help="spans per PutTraceSegments (at most 50)")
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.cpu})
        except OSError:
            pass
    spans = make_spans(args.spans)
    if args.stage in ("convert", "all"):
        report(bench_convert(spans))
    if args.stage in ("output", "all"):
        report(asyncio.run(bench_output(spans, min(args.batch, 50))))


if __name__ == "__main__":
    main()
