"""The `prometheus_exporter` output, scraped back with prometheus_client's parser."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from collector.api import ComponentContext, HostFacts
from collector.events import METRICS, Batch, Metric
from collector_plugins.inputs.prometheus.input import PrometheusConfig, PrometheusInput
from collector_plugins.outputs.prometheus_exporter.exposition import Exposition, label_name, metric_name
from collector_plugins.outputs.prometheus_exporter.output import PrometheusExporter, PrometheusExporterConfig
from tests.descriptors import left_open_by_stop


@pytest.fixture
async def exporter(tmp_path: Path) -> AsyncIterator[PrometheusExporter]:
    config = PrometheusExporterConfig.model_validate(
        {"type": "prometheus_exporter", "inputs": ["m"], "listen": "127.0.0.1:0"}
    )
    out = PrometheusExporter(config, ComponentContext("prom", logging.getLogger("t"), tmp_path, HostFacts("h")))
    await out.start()
    yield out
    await out.stop()


async def scrape(out: PrometheusExporter) -> tuple[str, dict[str, Any]]:
    assert out.bound is not None
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{out.bound[1]}/metrics") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=")
        text = await r.text()
    return text, {f.name: f for f in text_string_to_metric_families(text)}


def samples(family: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


async def test_every_type_with_its_prometheus_type(exporter: PrometheusExporter) -> None:
    t = 1000.0
    histogram = {"bounds": [0.1, 0.5], "bucket_counts": [1.0, 2.0, 1.0], "sum": 1.6, "count": 4.0}
    await exporter.write(
        Batch(
            METRICS,
            [
                Metric("app.requests", "counter", 3.0, {"route": "/a"}, t, None, 10.0),
                Metric("app.requests", "counter", 4.0, {"route": "/a"}, t + 10, None, 10.0),  # accumulated
                Metric("queue.depth", "gauge", 5.0, {"queue": "q"}, t),
                Metric("users", "set", ["a", "b", "c"], {}, t),
                Metric("latency_seconds", "distribution", histogram, {"svc": "x"}, t),
                Metric("latency_seconds", "distribution", histogram, {"svc": "x"}, t + 10),
                Metric("app.lat", "distribution", [1.0, 2.0, 3.0, 4.0], {"k.1": "v"}, t, "Milliseconds"),
            ],
        )
    )
    text, families = await scrape(exporter)
    for line in (
        "# TYPE app_requests_total counter",
        "# TYPE queue_depth gauge",
        "# TYPE users gauge",
        "# TYPE latency_seconds histogram",
        "# TYPE app_lat summary",
    ):
        assert line in text
    assert samples(families["app_requests"]) == {("app_requests_total", (("route", "/a"),)): 7.0}
    assert samples(families["queue_depth"]) == {("queue_depth", (("queue", "q"),)): 5.0}
    assert samples(families["users"])[("users", ())] == 3.0
    hist = samples(families["latency_seconds"])
    assert hist[("latency_seconds_bucket", (("le", "0.1"), ("svc", "x")))] == 2.0
    assert hist[("latency_seconds_bucket", (("le", "0.5"), ("svc", "x")))] == 6.0  # cumulative over le
    assert hist[("latency_seconds_bucket", (("le", "+Inf"), ("svc", "x")))] == 8.0
    assert hist[("latency_seconds_count", (("svc", "x"),))] == 8.0
    assert hist[("latency_seconds_sum", (("svc", "x"),))] == pytest.approx(3.2)
    summary = samples(families["app_lat"])
    assert summary[("app_lat_count", (("k_1", "v"),))] == 4.0
    assert summary[("app_lat_sum", (("k_1", "v"),))] == 10.0
    assert summary[("app_lat", (("k_1", "v"), ("quantile", "0.5")))] == 2.0
    assert summary[("app_lat", (("k_1", "v"), ("quantile", "0.99")))] == 4.0
    assert exporter.counters()["scrapes"] == 1


async def test_conflicts_invalid_points_and_expiry(exporter: PrometheusExporter) -> None:
    await exporter.write(
        Batch(
            METRICS,
            [
                Metric("x", "gauge", 1.0, {}, 1.0),
                Metric("x", "counter", 1.0, {}, 1.0),  # same name, another type: kept out, counted
                Metric("y", "gauge", float("nan"), {}, 1.0),
            ],
        )
    )
    assert exporter.counters()["type_conflicts"] == 1 and exporter.counters()["invalid_points"] == 1
    exposition = exporter.exposition
    exposition.expire(now=10**12)
    assert exposition.series_count() == 0
    _, families = await scrape(exporter)
    assert "x" not in families


def test_names() -> None:
    assert metric_name("app.requests-total") == "app_requests_total"
    assert metric_name("1st") == "_1st"
    assert label_name("k8s.pod") == "k8s_pod"
    assert label_name("__name__") == "___name__"
    exposition = Exposition(60)
    exposition.add([Metric("hits_total", "counter", 1.0, {}, 1.0)], now=1.0)
    assert "hits" in exposition.families  # exposed as hits_total, not hits_total_total


async def test_scraped_then_exported_histograms_keep_their_buckets(
    tmp_path: Path,
    exporter: PrometheusExporter,
    app: tuple[CollectorRegistry, int],
) -> None:
    registry, port = app
    latency = Histogram("work_seconds", "Work.", ["op"], buckets=(0.1, 1.0, 10.0), registry=registry)
    done = Counter("jobs", "Jobs.", registry=registry)
    source = PrometheusInput(
        PrometheusConfig.model_validate({"type": "prometheus", "targets": [f"127.0.0.1:{port}"], "interval": "1s"}),
        ComponentContext("scrape", logging.getLogger("t"), tmp_path, HostFacts("h")),
    )
    async with aiohttp.ClientSession() as session:
        await source.scrape_all(session)  # baseline
        for value in (0.05, 0.5, 0.5, 5.0, 50.0):
            latency.labels("a").observe(value)
        done.inc(7)
        await exporter.write(Batch(METRICS, await source.scrape_all(session)))
    _, families = await scrape(exporter)
    tags = (("instance", f"127.0.0.1:{port}"), ("job", "scrape"), ("op", "a"))
    hist = samples(families["work_seconds"])
    for le, expected in (("0.1", 1.0), ("1.0", 3.0), ("10.0", 4.0), ("+Inf", 5.0)):
        assert hist[("work_seconds_bucket", tuple(sorted((*tags, ("le", le)))))] == expected
    assert hist[("work_seconds_count", tags)] == 5.0
    assert samples(families["jobs"])[("jobs_total", tags[:2])] == 7.0
    assert samples(families["up"])[("up", tags[:2])] == 1.0


@pytest.mark.parametrize("options", [{"listen": "nowhere"}, {"path": "metrics"}, {"expire_after": "500ms"}])
def test_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        PrometheusExporterConfig.model_validate({"type": "prometheus_exporter", "inputs": ["m"], **options})


async def test_exemplars_pass_through_over_openmetrics(
    tmp_path: Path,
    exporter: PrometheusExporter,
    app: tuple[CollectorRegistry, int],
) -> None:
    registry, port = app
    latency = Histogram("work_seconds", "Work.", buckets=(0.1, 1.0, 10.0), registry=registry)
    done = Counter("jobs", "Jobs.", registry=registry)
    latency.observe(0.5, exemplar={"trace_id": "abc123"})
    done.inc(7, exemplar={"trace_id": "def456"})
    source = PrometheusInput(
        PrometheusConfig.model_validate({"type": "prometheus", "targets": [f"127.0.0.1:{port}"], "interval": "1s"}),
        ComponentContext("scrape", logging.getLogger("t"), tmp_path, HostFacts("h")),
    )
    async with aiohttp.ClientSession() as session:
        await exporter.write(Batch(METRICS, await source.scrape_all(session)))  # the app answers in OpenMetrics
        assert exporter.bound is not None
        url = f"http://127.0.0.1:{exporter.bound[1]}/metrics"
        async with session.get(url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}) as r:
            assert r.headers["Content-Type"].startswith("application/openmetrics-text")
            text = await r.text()
    families = {f.name: f for f in openmetrics_families(text)}
    (bucket,) = [s for s in families["work_seconds"].samples if s.labels.get("le") == "1.0"]
    assert bucket.value == 1.0
    assert bucket.exemplar is not None and bucket.exemplar.labels == {"trace_id": "abc123"}
    assert bucket.exemplar.value == 0.5
    (total,) = [s for s in families["jobs"].samples if s.name == "jobs_total"]
    assert total.value == 7.0
    assert total.exemplar is not None and total.exemplar.labels == {"trace_id": "def456"}
    _, classic = await scrape(exporter)  # the classic text format has no exemplars, the same series
    assert samples(classic["jobs"])[("jobs_total", (("instance", f"127.0.0.1:{port}"), ("job", "scrape")))] == 7.0


async def test_a_targets_values_pass_through_and_changed_points_accumulate(exporter: PrometheusExporter) -> None:
    def source(value: float) -> dict[str, Any]:
        return {"format": "prometheus", "type": "counter", "family": "jobs", "sample": "jobs_total", "value": value}

    await exporter.write(
        Batch(
            METRICS,
            [
                Metric("jobs_total", "counter", 0.0, {"t": "a"}, 1.0, None, 10.0, source(15456.24)),
                Metric("jobs_total", "counter", 3.0, {"t": "a"}, 2.0, None, 10.0, source(15459.24)),
                # renamed by a processor: no longer the target's series, its increases are summed
                Metric("renamed_total", "counter", 3.0, {"t": "a"}, 2.0, None, 10.0, source(15459.24)),
                Metric("renamed_total", "counter", 2.0, {"t": "a"}, 3.0, None, 10.0, source(15461.24)),
                # an aggregate (no source): summed since the collector's start, as before
                Metric("summed_total", "counter", 4.0, {"t": "a"}, 2.0, None, 10.0),
                Metric("summed_total", "counter", 5.0, {"t": "a"}, 3.0, None, 10.0),
            ],
        )
    )
    _, families = await scrape(exporter)
    assert samples(families["jobs"]) == {("jobs_total", (("t", "a"),)): 15459.24}  # the target's, not re-based
    assert samples(families["renamed"]) == {("renamed_total", (("t", "a"),)): 5.0}
    assert samples(families["summed"]) == {("summed_total", (("t", "a"),)): 9.0}


async def test_what_openmetrics_cannot_say_is_served_in_the_text_format(exporter: PrometheusExporter) -> None:
    # an exemplar on a gauge: OpenMetrics has no way to write it, prometheus_client refuses the whole exposition
    source = {"format": "prometheus", "type": "gauge", "family": "g", "sample": "g", "value": 2.0}
    source["exemplar"] = {"labels": {"trace_id": "x"}, "value": 2.0, "timestamp": None}
    await exporter.write(Batch(METRICS, [Metric("g", "gauge", 2.0, {}, 1.0, None, 0.0, source)]))
    assert exporter.bound is not None
    url = f"http://127.0.0.1:{exporter.bound[1]}/metrics"
    accept = {"Accept": "application/openmetrics-text; version=1.0.0"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=accept) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain; version=")
        text = await r.text()
    assert samples({f.name: f for f in text_string_to_metric_families(text)}["g"]) == {("g", ()): 2.0}


@pytest.mark.parametrize("turns", range(4))
async def test_stop_closes_the_connections_being_accepted_and_returns_in_time(tmp_path: Path, turns: int) -> None:
    config = PrometheusExporterConfig.model_validate(
        {"type": "prometheus_exporter", "inputs": ["m"], "listen": "127.0.0.1:0"}
    )
    out = PrometheusExporter(config, ComponentContext("prom", logging.getLogger("t"), tmp_path, HostFacts("h")))
    await out.start()
    assert out.bound is not None
    started = time.monotonic()
    leftover = await left_open_by_stop(out.bound[1], out.stop, turns)
    assert time.monotonic() - started < 3  # aiohttp's default shutdown_timeout is 60 s
    assert leftover == set(), f"accepted sockets still open after stop(): {leftover}"
