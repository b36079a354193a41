"""Prometheus in, Prometheus out: real expositions through the `prometheus` input and `prometheus_exporter`.

Sources are real: Debian's prometheus-node-exporter and the `/metrics` of a real Prometheus 2.42 server.
Their expositions are captured once and served by a static HTTP server, so the round trip is deterministic:
every series of the capture must come out of our exporter with the same name, label set, type, HELP and
value, compared exactly (floats equal; the capture is one scrape, so nothing moves between the two reads).
A summary's NaN quantiles are carried and compared too; other non-finite samples (none in these sources)
would be dropped by the input and are counted. Our series
carry the input's `job` and `instance` tags as labels, removed before comparing.

A live test compares families, types and label sets against the running node_exporter, and a real
Prometheus server scrapes the captures and our exporter and must answer the same selectors with the same
values (`{le="..."}` buckets, a summary's `_sum` / `_count`, counters).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from collector.api import ComponentContext, HostFacts, InputContext
from collector.events import METRICS, Batch
from collector.testing import free_port, wait_for, wait_for_sync
from collector_plugins.inputs.prometheus.input import PrometheusConfig, PrometheusInput
from collector_plugins.outputs.prometheus_exporter.output import PrometheusExporter, PrometheusExporterConfig
from tests.plugins.prometheus_peers import node_exporter  # noqa: F401  (fixture)

PROMETHEUS = shutil.which("prometheus")
TEXT = "text/plain; version=0.0.4; charset=utf-8"
OURS = {"up", "scrape_duration_seconds"}  # the input's own series, not the source's
Key = tuple[str, tuple[tuple[str, str], ...]]
Series = dict[Key, float | str]


def start_prometheus(tmp_path: Path, config: str) -> tuple[subprocess.Popen[bytes], int]:
    if PROMETHEUS is None:
        pytest.skip("prometheus is not installed (apt-get install -y prometheus; tests/peers/install.sh)")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(config)
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115  (kept open for the process' life)
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    log.close()

    def ready() -> bool:
        if process.poll() is not None:
            raise RuntimeError("prometheus exited: " + (tmp_path / "prometheus.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        wait_for_sync(ready, timeout=30, interval=0.2)
    except BaseException:
        stop(process)
        raise
    return process, port


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[str], int]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(config: str) -> int:
        work = tmp_path / f"prometheus{len(started)}"
        work.mkdir()
        process, port = start_prometheus(work, config)
        started.append(process)
        return port

    yield start
    for process in started:
        stop(process)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


class Static:
    """Serves captured expositions at /<name>, as the source served them (classic text format)."""

    def __init__(self) -> None:
        self.bodies: dict[str, str] = {}
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, port: int | None = None) -> None:
        async def handler(request: web.Request) -> web.Response:
            body = self.bodies.get(request.match_info["name"])
            if body is None:
                raise web.HTTPNotFound()
            return web.Response(body=body.encode(), headers={"Content-Type": TEXT})

        app = web.Application()
        app.router.add_get("/{name}", handler)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = port or free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class Relay:
    """Our side: the `prometheus` input feeding a `prometheus_exporter` on 127.0.0.1."""

    def __init__(self, tmp_path: Path, targets: list[str], port: int = 0) -> None:
        self.input = PrometheusInput(
            PrometheusConfig.model_validate(
                {"type": "prometheus", "targets": targets, "job": "relay", "interval": "5s", "timeout": "5s"}
            ),
            InputContext("prom", logging.getLogger("t.in"), tmp_path, HostFacts("h"), None, asyncio.Event()),
        )
        config = {"type": "prometheus_exporter", "inputs": ["prom"], "listen": f"127.0.0.1:{port}"}
        self.output = PrometheusExporter(
            PrometheusExporterConfig.model_validate(config),
            ComponentContext("out", logging.getLogger("t.out"), tmp_path, HostFacts("h")),
        )

    async def __aenter__(self) -> Relay:
        await self.output.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.output.stop()

    async def scrape(self) -> None:
        async with aiohttp.ClientSession() as session:
            metrics = await self.input.scrape_all(session)
        assert all(m.value == 1.0 for m in metrics if m.name == "up"), "the relay's scrape failed"
        await self.output.write(Batch(METRICS, metrics))

    async def exposition(self, accept: str | None = None) -> str:
        assert self.output.bound is not None
        headers = {"Accept": accept} if accept else {}
        url = f"http://127.0.0.1:{self.output.bound[1]}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
            return await r.text()


def families(text: str, drop: frozenset[str] = frozenset()) -> dict[tuple[str, str], Any]:
    # by name and type: the parser names a counter `x_total`'s family `x`, and a gauge `x` may sit beside it
    return {(f.name, f.type): f for f in text_string_to_metric_families(text) if f.name not in drop}


def series(family: Any, skip_labels: tuple[str, ...] = ()) -> Series:
    out: Series = {}
    for s in family.samples:
        labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in skip_labels))
        out[(s.name, labels)] = s.value if math.isfinite(s.value) else str(s.value)  # NaN == NaN as "nan"
    return out


def carried(key: Key, value: float | str) -> bool:
    """Whether the input carries a sample: all but non-finite ones outside a summary's quantiles."""
    return not isinstance(value, str) or "quantile" in dict(key[1])


def compare(source_text: str, ours_text: str) -> tuple[int, int]:
    """Asserts that every carried series of the source came out the same; (series compared, non-finite skipped)."""
    source = families(source_text)
    ours = families(ours_text, frozenset(OURS))
    assert sorted(ours) == sorted(source), "families differ"
    compared = skipped = 0
    for name, family in source.items():
        mine = ours[name]
        assert mine.documentation == family.documentation, name
        theirs = series(family)
        finite = {k: v for k, v in theirs.items() if carried(k, v)}
        skipped += len(theirs) - len(finite)
        assert series(mine, ("job", "instance")) == finite, name  # exact: same names, label sets and values
        compared += len(finite)
    return compared, skipped


# ----------------------------------------------------------------- the golden round trip


async def golden(tmp_path: Path, capture: str) -> tuple[int, int]:
    static = Static()
    static.bodies["metrics"] = capture
    await static.start()
    try:
        async with Relay(tmp_path, [f"http://127.0.0.1:{static.port}/metrics"]) as relay:
            await relay.scrape()  # the baseline
            first = await relay.exposition()
            result = compare(capture, first)
            await relay.scrape()  # and again: still the source's values, nothing re-based or summed
            assert compare(capture, await relay.exposition()) == result
            return result
    finally:
        await static.stop()


async def test_node_exporter_golden_round_trip(tmp_path: Path, node_exporter: int) -> None:  # noqa: F811
    capture = fetch(f"http://127.0.0.1:{node_exporter}/metrics")
    compared, skipped = await golden(tmp_path, capture)
    print(f"node_exporter: {compared} series compared, {skipped} non-finite skipped")
    assert compared > 300 and skipped == 0


async def test_prometheus_server_golden_round_trip(tmp_path: Path, prometheus_factory: Callable[[str], int]) -> None:
    port = prometheus_factory("global:\n  scrape_interval: 1h\n")
    capture = fetch(f"http://127.0.0.1:{port}/metrics")
    assert 'le="+Inf"' in capture and "_sum" in capture  # it has histograms and summaries to carry
    assert "} NaN" in capture  # and summaries with NaN quantiles (windows without observations)
    compared, skipped = await golden(tmp_path, capture)
    print(f"prometheus: {compared} series compared, {skipped} non-finite skipped")
    assert compared > 200 and skipped == 0


# What the two real sources do not show: a counter without the `_total` suffix (allowed in the text format;
# prometheus_client's parser names its sample `legacy_requests_total`, so it leaves with that name, the one
# OpenMetrics requires: the one known renaming), untyped samples, label values that need escaping, bucket
# bounds in exponent notation.
EDGES = """# HELP legacy_requests A counter without the _total suffix.
# TYPE legacy_requests counter
legacy_requests{path="/a\\"b\\\\c\\nd"} 15456.24
# HELP mystery An untyped sample.
# TYPE mystery untyped
mystery{kind="x"} 3
# HELP tiny_seconds Bounds written in exponent notation.
# TYPE tiny_seconds histogram
tiny_seconds_bucket{le="1e-05"} 1
tiny_seconds_bucket{le="10000"} 2
tiny_seconds_bucket{le="1e+06"} 2
tiny_seconds_bucket{le="+Inf"} 3
tiny_seconds_sum 1.5e+06
tiny_seconds_count 3
"""


async def test_edges_golden_round_trip(tmp_path: Path) -> None:
    compared, skipped = await golden(tmp_path, EDGES)
    assert (compared, skipped) == (8, 0)


async def test_live_node_exporter_families_types_and_label_sets(tmp_path: Path, node_exporter: int) -> None:  # noqa: F811
    async with Relay(tmp_path, [f"127.0.0.1:{node_exporter}"]) as relay:
        await relay.scrape()
        ours = families(await relay.exposition(), frozenset(OURS))
    source = families(await asyncio.to_thread(fetch, f"http://127.0.0.1:{node_exporter}/metrics"))
    assert sorted(ours) == sorted(source)  # the same families with the same types

    def label_sets(family: Any, skip: tuple[str, ...] = ()) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
        # values change between two live scrapes; which series exist does not (NaN ones aside)
        return {k for k, v in series(family, skip).items() if carried(k, v)}

    for name, family in source.items():
        assert label_sets(ours[name], ("job", "instance")) == label_sets(family), name


# ----------------------------------------------------------------- a real Prometheus scrapes both


async def query(port: int, expr: str) -> dict[tuple[tuple[str, str], ...], str]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = orjson.loads(await asyncio.to_thread(fetch, url))
    assert body["status"] == "success", body
    return {
        tuple(sorted((k, v) for k, v in r["metric"].items() if k != "job")): r["value"][1]
        for r in body["data"]["result"]
    }


def rename(key: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """The one known renaming: a text-format counter without `_total` gets it (see EDGES)."""
    return tuple(("__name__", "legacy_requests_total") if kv == ("__name__", "legacy_requests") else kv for kv in key)


def with_job(expr: str, matcher: str) -> str:
    return f"{expr[:-1]}, job{matcher}}}" if expr.endswith("}") else f"{expr}{{job{matcher}}}"


async def test_prometheus_answers_the_same_for_the_source_and_for_us(
    tmp_path: Path,
    node_exporter: int,  # noqa: F811
    prometheus_factory: Callable[[str], int],
) -> None:
    exporter_port = free_port()
    # A server of its own first, for a capture of a real Prometheus' /metrics.
    own = prometheus_factory("global:\n  scrape_interval: 1h\n")
    # one static server per capture: the two sources must differ by `instance`, as real targets do
    node, prom, edges = Static(), Static(), Static()
    node.bodies["metrics"] = await asyncio.to_thread(fetch, f"http://127.0.0.1:{node_exporter}/metrics")
    prom.bodies["metrics"] = await asyncio.to_thread(fetch, f"http://127.0.0.1:{own}/metrics")
    edges.bodies["metrics"] = EDGES
    for static in (node, prom, edges):
        await static.start()
    sources = [f"127.0.0.1:{static.port}" for static in (node, prom, edges)]
    try:
        async with Relay(tmp_path, sources, exporter_port) as relay:
            await relay.scrape()
            # job "source" scrapes the captures, job "relay" our exporter; honor_labels keeps our series'
            # instance (the capture's address), so the two differ by job only
            config = f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: source
    static_configs: [{{targets: ["{sources[0]}", "{sources[1]}", "{sources[2]}"]}}]
  - job_name: relay
    honor_labels: true
    static_configs: [{{targets: ["127.0.0.1:{exporter_port}"]}}]
"""
            port = prometheus_factory(config)
            source_sel = '{job="source",__name__!~"up|scrape_.*"}'
            relay_sel = '{job="relay",__name__!~"up|scrape_.*"}'

            def finite(result: dict[Any, str]) -> dict[Any, str]:
                # non-finite samples outside a summary's quantiles are not carried (the input drops them)
                return {k: v for k, v in result.items() if v not in ("NaN", "+Inf", "-Inf") or "quantile" in dict(k)}

            async def scraped() -> bool:
                theirs = finite(await query(port, source_sel))
                return bool(theirs) and len(await query(port, relay_sel)) == len(theirs)

            with contextlib.suppress(TimeoutError):  # the comparison below says what differs
                await wait_for(scraped, timeout=30, interval=0.5)
            everything = await query(port, source_sel)
            expected = {rename(k): v for k, v in finite(everything).items()}
            assert await query(port, relay_sel) == expected
            compared = len(finite(everything))
            print(f"real Prometheus: {compared} series compared ({len(everything) - compared} non-finite)")
            assert compared > 500

            # the selectors that broke: bucket `le` values as written, a summary's _sum / _count, counters
            checks = {
                '{le="+Inf"}': 1,
                '{le="0.1"}': 1,
                '{__name__=~".+_bucket", le=~"[0-9]+"}': 1,  # integral bounds: `10000`, never `10000.0`
                "go_gc_duration_seconds_sum": 2,
                "go_gc_duration_seconds_count": 2,
                "node_cpu_seconds_total": 1,
                "prometheus_http_requests_total": 1,
                '{le="1e-05"}': 1,
                '{le="10000"}': 1,  # the selector of the issue
                "mystery": 1,
            }
            for expr, least in checks.items():
                theirs = await query(port, with_job(expr, '="source"'))
                mine = await query(port, with_job(expr, '="relay"'))
                assert len(theirs) >= least and mine == theirs, expr
    finally:
        for static in (node, prom, edges):
            await static.stop()
