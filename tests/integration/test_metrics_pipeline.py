"""Metrics end to end in the real runtime: real clients in, moto's CloudWatch and CloudWatch Logs out.

- StatsD (the `statsd` client) -> `statsd` input -> `cloudwatch_metrics` -> moto: counter sums exact, timer
  statistics within the distribution's 1 % and percentiles (from the Values/Counts sent; moto computes
  none) within 1 % of the exact ones.
- aws-embedded-metrics (TCP) -> `emf` input -> `cloudwatch_logs` (documents, with the EMF header) and, through
  the input's metrics, `cloudwatch_metrics` -> moto.
"""

from __future__ import annotations

import asyncio
import datetime
import math
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import statsd

from collector.api import HostFacts
from collector.config import parse_config
from collector.registry import load_registry
from collector.runtime import Runtime
from collector.testing import free_port, wait_for
from collector_plugins.common.metrics.distribution import quantile
from tests.aws_faults import FaultProxy
from tests.moto import MotoServer

pytestmark = pytest.mark.slow


def off_loop(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """A `wait_for` predicate that calls moto (blocking boto3) in a thread: on the event loop it would stall
    the runtime under test, which delivers on that same loop."""
    return lambda: asyncio.to_thread(check)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = Runtime(tmp_path, HostFacts("node1"))
    yield rt
    await rt.shutdown(10)


async def apply(runtime: Runtime, text: str) -> None:
    await runtime.apply(parse_config(textwrap.dedent(text), "c.yaml", load_registry(), environ={}).graph)


def statistics(moto: MotoServer, namespace: str, name: str, dims: dict[str, str]) -> dict[str, float]:
    now = datetime.datetime.now(datetime.UTC)
    points = moto.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=now - datetime.timedelta(minutes=10),
        EndTime=now + datetime.timedelta(minutes=1),
        Period=3600,
        Statistics=["Sum", "SampleCount", "Minimum", "Maximum"],
    )["Datapoints"]
    if not points:
        return {"Sum": 0.0, "SampleCount": 0.0}
    return {
        "Sum": sum(p["Sum"] for p in points),
        "SampleCount": sum(p["SampleCount"] for p in points),
        "Minimum": min(p["Minimum"] for p in points),
        "Maximum": max(p["Maximum"] for p in points),
    }


def exact_quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


async def test_statsd_to_cloudwatch(runtime: Runtime, moto: MotoServer) -> None:
    udp, tcp = free_port(), free_port()
    await apply(
        runtime,
        f"""
        inputs:
          statsd: {{type: statsd, listen: ["udp://127.0.0.1:{udp}", "tcp://127.0.0.1:{tcp}"], interval: 1s}}
        outputs:
          cw:
            type: cloudwatch_metrics
            inputs: [statsd]
            namespace: E2E
            region: {moto.region}
            endpoint_url: {moto.endpoint_url}
            batch: {{timeout: 100ms}}
        """,
    )
    await wait_for(lambda: getattr(runtime.instance("cw"), "clients", None) is not None, timeout=5)
    output: Any = runtime.instance("cw")
    sent: list[dict[str, Any]] = []
    client = await output.clients.client("cloudwatch")
    client.meta.events.register(
        "provide-client-params.cloudwatch.PutMetricData", lambda params, **_: sent.append(params)
    )

    rnd = random.Random(42)
    latencies = [round(rnd.lognormvariate(3.0, 0.7), 3) for _ in range(3000)]

    def send() -> None:
        app = statsd.StatsClient("127.0.0.1", udp, prefix="shop")
        with app.pipeline() as pipe:
            for i, ms in enumerate(latencies):
                pipe.timing("checkout.latency", ms)
                pipe.incr("checkout.orders")
                if i % 100 == 0:
                    pipe.gauge("checkout.queue", i // 100)
        app.close()
        over_tcp = statsd.TCPStatsClient("127.0.0.1", tcp, prefix="shop")
        for _ in range(500):
            over_tcp.incr("checkout.orders", 2)
        over_tcp.close()

    await asyncio.to_thread(send)
    await wait_for(off_loop(lambda: statistics(moto, "E2E", "shop.checkout.orders", {})["Sum"] >= 4000), timeout=20)
    await wait_for(
        off_loop(lambda: statistics(moto, "E2E", "shop.checkout.latency", {})["SampleCount"] >= 3000), timeout=20
    )
    orders = statistics(moto, "E2E", "shop.checkout.orders", {})
    assert orders["Sum"] == 3000 + 1000  # counters: exact sums
    latency = statistics(moto, "E2E", "shop.checkout.latency", {})
    assert latency["SampleCount"] == 3000
    assert latency["Sum"] == pytest.approx(math.fsum(latencies), rel=0.01)
    assert latency["Minimum"] == pytest.approx(min(latencies), rel=0.01)
    assert latency["Maximum"] == pytest.approx(max(latencies), rel=0.01)
    assert statistics(moto, "E2E", "shop.checkout.queue", {})["Maximum"] == 29.0

    # Percentiles from what CloudWatch was given (moto answers percentile queries with HTTP 500).
    pairs: dict[float, float] = {}
    for params in sent:
        for datum in params["MetricData"]:
            if datum["MetricName"] == "shop.checkout.latency":
                assert datum["Unit"] == "Milliseconds" and datum["StorageResolution"] == 1
                assert len(datum["Values"]) <= 150
                for value, count in zip(datum["Values"], datum["Counts"], strict=True):
                    pairs[value] = pairs.get(value, 0.0) + count
    for q in (0.5, 0.9, 0.99):
        assert quantile(sorted(pairs.items()), q) == pytest.approx(exact_quantile(latencies, q), rel=0.01)


EMF_APP = textwrap.dedent(
    """
    import sys
    from aws_embedded_metrics.logger.metrics_logger_factory import create_metrics_logger

    for i in range(int(sys.argv[1])):
        metrics = create_metrics_logger()
        metrics.set_namespace("ShopEMF")
        metrics.set_dimensions({"Service": "checkout"})
        metrics.put_metric("Latency", float(i % 20), "Milliseconds")
        metrics.set_property("RequestId", "r%d" % i)
        metrics.flush_sync()
    """
)


async def test_emf_library_to_cloudwatch_logs_and_metrics(runtime: Runtime, moto: MotoServer) -> None:
    with FaultProxy(moto.endpoint_url) as proxy:
        await apply(
            runtime,
            f"""
            inputs:
              emf: {{type: emf, listen: ["tcp://127.0.0.1:0"], emit: [logs, metrics], interval: 1s}}
            outputs:
              logs:
                type: cloudwatch_logs
                inputs: [emf]
                log_group: "{{log_group_name}}"
                log_stream: node1
                region: {moto.region}
                endpoint_url: {proxy.url}
                batch: {{timeout: 100ms}}
              metrics:
                type: cloudwatch_metrics
                inputs: [emf]
                namespace_from_tag: namespace
                region: {moto.region}
                endpoint_url: {moto.endpoint_url}
                batch: {{timeout: 100ms}}
            """,
        )
        # The port the input bound (not one picked beforehand, which another test may take meanwhile), once it
        # listens: the library gives up after a few refused connects.
        await wait_for(lambda: runtime.stats["emf"].state == "running", timeout=10)
        port = runtime.instance("emf").ports()[0]  # type: ignore[union-attr]
        env = {
            **os.environ,
            "AWS_EMF_ENVIRONMENT": "Default",  # the agent sink, without probing instance metadata
            "AWS_EMF_AGENT_ENDPOINT": f"tcp://127.0.0.1:{port}",
            "AWS_EMF_LOG_GROUP_NAME": "/app/shop",
        }
        await asyncio.to_thread(subprocess.run, [sys.executable, "-c", EMF_APP, "200"], env=env, check=True, timeout=60)
        logs = moto.client("logs")

        def events() -> list[dict[str, Any]]:
            try:
                return logs.get_log_events(logGroupName="/app/shop", logStreamName="node1")["events"]
            except logs.exceptions.ResourceNotFoundException:
                return []

        await wait_for(off_loop(lambda: len(events()) == 200), timeout=20)
        await wait_for(
            off_loop(lambda: statistics(moto, "ShopEMF", "Latency", {"Service": "checkout"})["SampleCount"] >= 200),
            timeout=20,
        )
        put_requests = [r for r in proxy.requests if r.operation == "PutLogEvents"]
    docs = [orjson.loads(e["message"]) for e in events()]
    assert sorted(d["RequestId"] for d in docs) == sorted(f"r{i}" for i in range(200))
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ShopEMF" for d in docs)
    assert put_requests and all(r.headers.get("x-amzn-logs-format") == "json/emf" for r in put_requests)
    latency = statistics(moto, "ShopEMF", "Latency", {"Service": "checkout"})
    assert (latency["SampleCount"], latency["Sum"]) == (200, 10 * sum(range(20)))
    assert (latency["Minimum"], latency["Maximum"]) == (0.0, 19.0)
