"""The `prometheus` input: a prometheus_client app and Debian's prometheus-node-exporter scraped for real."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest

from collector.api import HostFacts, InputContext
from collector.events import Batch, Metric
from collector.testing import free_port, wait_for
from collector_plugins.common.metrics.distribution import as_distribution
from collector_plugins.inputs.prometheus.input import PrometheusConfig, PrometheusInput


def make_input(tmp_path: Path, **options: Any) -> PrometheusInput:
    config = PrometheusConfig.model_validate({"type": "prometheus", "interval": "1s", "timeout": "1s", **options})
    ctx = InputContext("prom", logging.getLogger("test.prometheus"), tmp_path, HostFacts("h"), None, asyncio.Event())
    return PrometheusInput(config, ctx)


def by_name(metrics: list[Metric], name: str, **tags: str) -> list[Metric]:
    return [m for m in metrics if m.name == name and all(m.tags.get(k) == v for k, v in tags.items())]


async def scrape(inp: PrometheusInput) -> list[Metric]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=inp.config.scrape_timeout)) as session:
        return await inp.scrape_all(session)


async def test_a_prometheus_client_app(tmp_path: Path, app: tuple[CollectorRegistry, int]) -> None:
    registry, port = app
    requests = Counter("http_requests", "Requests.", ["code"], registry=registry)
    temperature = Gauge("temperature_celsius", "Temperature.", registry=registry)
    latency = Histogram("latency_seconds", "Latency.", buckets=(0.1, 0.5, 1.0), registry=registry)
    sizes = Summary("payload_bytes", "Sizes.", registry=registry)
    requests.labels("200").inc(3)
    temperature.set(21.5)
    latency.observe(0.05)
    inp = make_input(tmp_path, targets=[f"127.0.0.1:{port}"], job="shop")

    first = await scrape(inp)
    tags = {"job": "shop", "instance": f"127.0.0.1:{port}"}
    assert by_name(first, "up", **tags)[0].value == 1.0
    assert by_name(first, "scrape_duration_seconds", **tags)[0].unit == "Seconds"
    assert by_name(first, "temperature_celsius", **tags)[0].value == 21.5
    # counters: the first scrape is the baseline, an increase of 0, with the target's own value in `source`
    (baseline,) = by_name(first, "http_requests_total")
    assert (baseline.type, baseline.value) == ("counter", 0.0)
    assert baseline.source is not None
    assert (baseline.source["type"], baseline.source["family"], baseline.source["value"]) == (
        "counter",
        "http_requests",
        3.0,
    )
    (first_hist,) = by_name(first, "latency_seconds")
    assert first_hist.value["count"] == 0.0 and first_hist.value["bucket_counts"] == [0.0] * 4
    assert first_hist.source is not None
    assert first_hist.source["le"] == ["0.1", "0.5", "1.0", "+Inf"]  # as prometheus_client writes them
    assert (first_hist.source["buckets"], first_hist.source["count"]) == ([1.0, 1.0, 1.0, 1.0], 1.0)

    requests.labels("200").inc(5)
    requests.labels("500").inc(1)  # a series new in a known target started from zero
    for value in (0.05, 0.3, 0.3, 0.7, 2.0):
        latency.observe(value)
    sizes.observe(100)
    sizes.observe(300)
    temperature.set(22.0)
    second = await scrape(inp)
    (counter,) = by_name(second, "http_requests_total", code="200")
    assert (counter.type, counter.value, counter.interval) == ("counter", 5.0, 1.0)
    assert by_name(second, "http_requests_total", code="500")[0].value == 1.0
    (hist,) = by_name(second, "latency_seconds")
    assert hist.type == "distribution"
    assert hist.value["bounds"] == [0.1, 0.5, 1.0]
    assert hist.value["bucket_counts"] == [1.0, 2.0, 1.0, 1.0]
    assert (hist.value["count"], hist.value["sum"]) == (5.0, pytest.approx(3.35))
    dist = as_distribution(hist.value)
    assert dist.count == 5 and dist.quantile(0.5) == 0.3  # the (0.1, 0.5] bucket's middle
    assert by_name(second, "payload_bytes_sum")[0].value == 400.0  # the summary's increase since the first scrape
    assert by_name(second, "payload_bytes_sum")[0].source["type"] == "summary"  # type: ignore[index]
    assert by_name(second, "payload_bytes_count")[0].value == 2.0
    assert by_name(second, "temperature_celsius")[0].value == 22.0
    assert inp.counters()["scrapes"] == 2


async def test_counter_restarts_and_series_that_come_and_go(tmp_path: Path) -> None:
    body = {"text": "# TYPE jobs_total counter\njobs_total 10\n"}

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=body["text"])

    async with serve(handler) as url:
        inp = make_input(tmp_path, targets=[url])
        await scrape(inp)
        body["text"] = "# TYPE jobs_total counter\njobs_total 15\n"
        assert by_name(await scrape(inp), "jobs_total")[0].value == 5.0
        body["text"] = "# TYPE jobs_total counter\njobs_total 4\n"  # the process restarted
        assert by_name(await scrape(inp), "jobs_total")[0].value == 4.0
        body["text"] = "# TYPE other gauge\nother 1\n"
        await scrape(inp)
        body["text"] = "# TYPE jobs_total counter\njobs_total 100\n"  # back after a gap: counted from zero
        assert by_name(await scrape(inp), "jobs_total")[0].value == 100.0
        fresh = make_input(tmp_path, targets=[url])
        (baseline,) = by_name(await scrape(fresh), "jobs_total")  # a target's first scrape is the baseline
        assert baseline.value == 0.0 and baseline.source is not None and baseline.source["value"] == 100.0


class serve:
    """An aiohttp server on 127.0.0.1 with one handler at /metrics; yields its URL."""

    def __init__(self, handler: Callable[..., Any]) -> None:
        self.handler = handler
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_get("/metrics", self.handler)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}/metrics"

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


async def test_basic_and_bearer_auth(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Gauge("secret_value", "S.", registry=registry).set(7)
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        seen.append(auth)
        if auth not in ("Basic dTpwdw==", "Bearer t0ken"):  # u:pw
            return web.Response(status=401)
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    (tmp_path / "pw").write_text("pw\n")
    (tmp_path / "token").write_text("t0ken\n")
    async with serve(handler) as url:
        for options, up in [
            ({"basic_auth": {"username": "u", "password": "pw"}}, 1.0),
            ({"basic_auth": {"username": "u", "password_file": str(tmp_path / "pw")}}, 1.0),
            ({"bearer_token_file": str(tmp_path / "token")}, 1.0),
            ({"bearer_token": "t0ken"}, 1.0),
            ({"bearer_token": "wrong"}, 0.0),
            ({}, 0.0),
        ]:
            metrics = await scrape(make_input(tmp_path, targets=[url], **options))
            assert by_name(metrics, "up")[0].value == up, options
            assert bool(by_name(metrics, "secret_value")) == bool(up)
    assert seen[-1] is None


async def test_file_discovery(tmp_path: Path, app: tuple[CollectorRegistry, int]) -> None:
    registry, port = app
    Gauge("ready", "R.", registry=registry).set(1)
    sd = tmp_path / "targets.json"
    sd.write_text(json.dumps([{"targets": [f"127.0.0.1:{port}"], "labels": {"env": "prod"}}]))
    yaml_sd = tmp_path / "more.yaml"
    yaml_sd.write_text(f"- targets: ['127.0.0.1:{port}']\n  labels: {{env: dev}}\n")
    inp = make_input(tmp_path, file_sd=[str(tmp_path / "*.json")])
    metrics = await scrape(inp)
    assert by_name(metrics, "ready")[0].tags == {"env": "prod", "job": "prom", "instance": f"127.0.0.1:{port}"}
    # A changed file is read again; a broken one keeps its previous targets.
    sd.write_text(json.dumps([]))
    os.utime(sd, (time.time() + 5, time.time() + 5))
    assert by_name(await scrape(inp), "up") == []
    sd.write_text("{not json")
    os.utime(sd, (time.time() + 10, time.time() + 10))
    assert by_name(await scrape(inp), "up") == []
    yaml_inp = make_input(tmp_path, file_sd=[str(yaml_sd)])
    assert by_name(await scrape(yaml_inp), "ready")[0].tags["env"] == "dev"


async def test_failures_are_up_zero_and_do_not_hold_back_other_targets(
    tmp_path: Path, app: tuple[CollectorRegistry, int], caplog: pytest.LogCaptureFixture
) -> None:
    registry, port = app
    for i in range(20):
        Gauge(f"g{i}", "G.", registry=registry).set(i)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.5)  # not a wait: a peer slower than the scrape timeout on purpose
        return web.Response(text="x 1\n")

    async with serve(slow) as slow_url:
        inp = make_input(tmp_path, targets=[slow_url, f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}"])
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="test.prometheus"):
            metrics = await scrape(inp)
        assert time.monotonic() - started < 1.4  # the timeout, not the slow target, bounds a round
    ups = {m.tags["instance"]: m.value for m in by_name(metrics, "up")}
    assert sorted(ups.values()) == [0.0, 0.0, 1.0]
    assert inp.counters()["failed_scrapes"] == 2
    assert len([r for r in caplog.records if "scrape failed" in r.getMessage()]) == 2
    limited = make_input(tmp_path, targets=[f"127.0.0.1:{port}"], sample_limit=5)
    assert by_name(await scrape(limited), "up")[0].value == 0.0
    small = make_input(tmp_path, targets=[f"127.0.0.1:{port}"], max_body_bytes=100)
    assert by_name(await scrape(small), "up")[0].value == 0.0


async def test_the_run_loop_emits_one_batch_per_round(tmp_path: Path, app: tuple[CollectorRegistry, int]) -> None:
    registry, port = app
    Gauge("g", "G.", registry=registry).set(1)
    batches: list[Batch] = []

    async def emit(batch: Batch) -> None:
        batches.append(batch)

    config = PrometheusConfig.model_validate({"type": "prometheus", "targets": [f"127.0.0.1:{port}"], "interval": "1s"})
    ctx = InputContext("prom", logging.getLogger("t"), tmp_path, HostFacts("h"), emit, asyncio.Event())
    inp = PrometheusInput(config, ctx)
    task = asyncio.create_task(inp.run(ctx))
    await wait_for(lambda: len(batches) >= 2, timeout=5)
    ctx.stopping.set()
    await asyncio.wait_for(task, 5)
    assert all(by_name(b.records, "g") for b in batches)


# ----------------------------------------------------------------- Debian's prometheus-node-exporter


async def test_node_exporter(tmp_path: Path, node_exporter: int) -> None:
    inp = make_input(tmp_path, targets=[f"127.0.0.1:{node_exporter}"], job="node", timeout="5s", interval="5s")
    first = await scrape(inp)
    assert by_name(first, "up")[0].value == 1.0
    assert by_name(first, "node_memory_MemTotal_bytes")[0].value > 0
    second = await scrape(inp)
    cpu = by_name(second, "node_cpu_seconds_total", mode="idle")
    assert cpu and all(m.type == "counter" and m.value >= 0 for m in cpu)
    assert {m.type for m in second} >= {"gauge", "counter"}
    summaries = by_name(second, "go_gc_duration_seconds")  # a summary: quantile gauges
    assert summaries and all("quantile" in m.tags for m in summaries)
