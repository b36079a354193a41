"""OTLP points from the real SDK, converted, through every metric output: CloudWatch (moto), EMF, Prometheus."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb
from prometheus_client.parser import text_string_to_metric_families

from collector.api import ComponentContext, HostFacts
from collector.buffer.codec import decode_batch, encode_batch
from collector.dlq import DeadLetterQueue, read_dead_letters
from collector.events import METRICS, Batch, Metric
from collector.send_result import Outcome
from collector_plugins.common.otlp.metrics import OtlpMetricsConverter
from collector_plugins.outputs.prometheus_exporter.output import PrometheusExporter, PrometheusExporterConfig
from tests.moto import MotoServer
from tests.plugins.otlp_sdk import Sdk
from tests.plugins.test_cloudwatch_metrics_output import make_output, statistics
from tests.plugins.test_metrics_to_emf import documents, processor
from tests.plugins.test_otlp_metrics import request_of

SEED = 1217


@pytest.fixture
def delta_sdk() -> Iterator[Sdk]:
    s = Sdk(delta=True, exponential=["exp"])
    yield s
    s.close()


@pytest.fixture
def cumulative_sdk() -> Iterator[Sdk]:
    s = Sdk(exponential=["exp"])
    yield s
    s.close()


def record(sdk: Sdk, rng: random.Random) -> dict[str, list[float]]:
    """Observations into a counter, an explicit and an exponential histogram; what was recorded."""
    lat = sdk.meter.create_histogram("http.duration", unit="ms")
    exp = sdk.meter.create_histogram("exp", unit="s")
    req = sdk.meter.create_counter("http.requests")
    seen: dict[str, list[float]] = {"lat": [], "exp": [], "req": []}
    for _ in range(400):
        v = round(rng.lognormvariate(3, 1.5), 3)
        lat.record(v, {"route": "/a"})
        seen["lat"].append(v)
        e = 0.0 if rng.random() < 0.05 else rng.lognormvariate(0, 4)  # spread over many buckets
        exp.record(e)
        seen["exp"].append(e)
        n = rng.randint(1, 5)
        req.add(n, {"route": "/a"})
        seen["req"].append(n)
    return seen


def convert(sdk: Sdk, conv: OtlpMetricsConverter) -> list[Metric]:
    out = conv.convert(sdk.export(), 0.0)
    assert out.rejected == 0, out.error_message
    return out.records


def named(records: list[Metric], name: str) -> Metric:
    (rec,) = [r for r in records if r.name == name]
    return rec


async def test_cloudwatch_reads_back_exact_statistics(tmp_path: Path, moto: MotoServer, delta_sdk: Sdk) -> None:
    seen = record(delta_sdk, random.Random(SEED))
    records = convert(delta_sdk, OtlpMetricsConverter())
    out = make_output(tmp_path, moto.endpoint_url)
    await out.start()
    try:
        assert (await out.send(Batch(METRICS, records))).outcome is Outcome.OK
    finally:
        await out.stop()
    t = named(records, "http.duration").timestamp
    dims = {"service.name": "shop", "route": "/a"}
    (lat,) = statistics(moto, "http.duration", t, dims)
    assert lat["SampleCount"] == 400.0 and lat["Unit"] == "Milliseconds"
    assert lat["Sum"] == pytest.approx(math.fsum(seen["lat"]), rel=1e-12)
    assert (lat["Minimum"], lat["Maximum"]) == (min(seen["lat"]), max(seen["lat"]))
    # the exponential histogram has more buckets than one datum holds: several datums, statistics still exact
    assert len(named(records, "exp").value["positive"]["bucket_counts"]) > 150
    (exp,) = statistics(moto, "exp", t, {"service.name": "shop"})
    assert exp["SampleCount"] == 400.0 and exp["Unit"] == "Seconds"
    assert exp["Sum"] == pytest.approx(math.fsum(seen["exp"]), rel=1e-12)
    assert (exp["Minimum"], exp["Maximum"]) == (min(seen["exp"]), max(seen["exp"]))
    (req,) = statistics(moto, "http.requests", t, dims)
    assert req["Sum"] == sum(seen["req"])


async def test_cloudwatch_summaries_and_up_down_counters(tmp_path: Path, moto: MotoServer) -> None:
    conv = OtlpMetricsConverter()
    t = time.time() // 60 * 60 - 60

    def request(count: int, total: float, depth: int, at: float) -> Any:
        summary = pb.Metric(name="rpc_seconds", unit="s")
        p = summary.summary.data_points.add(start_time_unix_nano=1, time_unix_nano=int(at * 1e9))
        p.count, p.sum = count, total
        p.quantile_values.add(quantile=0.99, value=total / count)
        updown = pb.Metric(name="queue.depth")
        updown.sum.aggregation_temporality, updown.sum.is_monotonic = 2, False
        updown.sum.data_points.add(start_time_unix_nano=1, time_unix_nano=int(at * 1e9), as_int=depth)
        return request_of(summary, updown)

    conv.convert(request(10, 2.0, 4, t), 0.0)
    records = conv.convert(request(15, 3.25, -2, t + 30), 0.0).records
    out = make_output(tmp_path, moto.endpoint_url)
    await out.start()
    try:
        assert (await out.send(Batch(METRICS, records))).outcome is Outcome.OK
    finally:
        await out.stop()
    svc = {"service.name": "svc"}
    assert statistics(moto, "rpc_seconds_count", t, svc)[0]["Sum"] == 5.0
    (total,) = statistics(moto, "rpc_seconds_sum", t, svc)
    assert (total["Sum"], total["Unit"]) == (1.25, "Seconds")
    assert statistics(moto, "rpc_seconds", t, {**svc, "quantile": "0.99"})[0]["Maximum"] == 3.25 / 15
    assert statistics(moto, "queue.depth", t, svc)[0]["Minimum"] == -2.0


async def test_cloudwatch_cumulative_series_send_increases(
    tmp_path: Path, moto: MotoServer, cumulative_sdk: Sdk
) -> None:
    conv = OtlpMetricsConverter()
    rng = random.Random(SEED)
    record(cumulative_sdk, rng)
    assert convert(cumulative_sdk, conv) == []  # primes
    seen = record(cumulative_sdk, rng)
    records = convert(cumulative_sdk, conv)
    out = make_output(tmp_path, moto.endpoint_url)
    await out.start()
    try:
        assert (await out.send(Batch(METRICS, records))).outcome is Outcome.OK
    finally:
        await out.stop()
    t = named(records, "http.duration").timestamp
    dims = {"service.name": "shop", "route": "/a"}
    (lat,) = statistics(moto, "http.duration", t, dims)
    assert lat["SampleCount"] == 400.0
    assert lat["Sum"] == pytest.approx(math.fsum(seen["lat"]), rel=1e-9)
    (exp,) = statistics(moto, "exp", t, {"service.name": "shop"})
    assert exp["SampleCount"] == 400.0
    assert exp["Sum"] == pytest.approx(math.fsum(seen["exp"]), rel=1e-9)
    (req,) = statistics(moto, "http.requests", t, dims)
    assert req["Sum"] == sum(seen["req"])


async def test_emf_documents_carry_exact_statistics(tmp_path: Path, delta_sdk: Sdk) -> None:
    seen = record(delta_sdk, random.Random(SEED))

    def observe(options: CallbackOptions) -> list[Observation]:
        return [Observation(2.5, {"room": "a"})]

    delta_sdk.meter.create_observable_gauge("temperature", [observe])
    records = convert(delta_sdk, OtlpMetricsConverter())
    proc, losses = await processor(tmp_path, namespace="Otel")
    out = proc.process(Batch(METRICS, records))
    assert out is not None and not losses
    docs = documents(out.records)

    def values_of(name: str) -> list[Any]:
        return [d[name] for d in docs if name in d]

    lat = values_of("http.duration")
    assert len(lat) == 1
    assert (lat[0]["Count"], lat[0]["Min"], lat[0]["Max"]) == (400.0, min(seen["lat"]), max(seen["lat"]))
    assert lat[0]["Sum"] == pytest.approx(math.fsum(seen["lat"]), rel=1e-12)
    assert sum(lat[0]["Counts"]) == 400.0 and min(lat[0]["Values"]) == min(seen["lat"])
    # the exponential histogram's values were split over documents (at most 100 values each), counts add up
    exp = values_of("exp")
    assert len(exp) > 1 and sum(sum(e["Counts"]) for e in exp) == 400.0
    assert values_of("http.requests") == [float(sum(seen["req"]))]
    assert values_of("temperature") == [2.5]
    units = {m["Name"]: m.get("Unit") for d in docs for m in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert units["http.duration"] == "Milliseconds" and units["exp"] == "Seconds"


@pytest.fixture
async def exporter(tmp_path: Path) -> AsyncIterator[PrometheusExporter]:
    config = PrometheusExporterConfig.model_validate(
        {"type": "prometheus_exporter", "inputs": ["m"], "listen": "127.0.0.1:0"}
    )
    out = PrometheusExporter(config, ComponentContext("prom", logging.getLogger("t"), tmp_path, HostFacts("h")))
    await out.start()
    yield out
    await out.stop()


async def scrape(out: PrometheusExporter) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    assert out.bound is not None
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{out.bound[1]}/metrics") as r:
        text = await r.text()
    families = {}
    for family in text_string_to_metric_families(text):
        families[f"{family.type}:{family.name}"] = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples
        }
    return families


async def test_prometheus_exposes_the_senders_cumulative_values(
    exporter: PrometheusExporter, cumulative_sdk: Sdk
) -> None:
    conv = OtlpMetricsConverter()
    rng = random.Random(SEED)
    seen = record(cumulative_sdk, rng)
    convert(cumulative_sdk, conv)
    more = record(cumulative_sdk, rng)
    request = cumulative_sdk.export()
    out = conv.convert(request, 0.0)
    await exporter.write(Batch(METRICS, out.records))
    families = await scrape(exporter)
    labels = (("route", "/a"), ("service_name", "shop"))
    # the counter is the sender's total (both exports), not the increase since the collector started
    assert families["counter:http_requests"][("http_requests_total", labels)] == sum(seen["req"] + more["req"])
    hist = families["histogram:http_duration"]
    every = seen["lat"] + more["lat"]
    assert hist[("http_duration_count", labels)] == 800.0
    assert hist[("http_duration_sum", labels)] == pytest.approx(math.fsum(every), rel=1e-12)
    buckets = {float(dict(k[1])["le"]): v for k, v in hist.items() if k[0] == "http_duration_bucket"}
    assert buckets[math.inf] == 800.0 and len(buckets) == 16
    for le in (0.0, 5.0, 100.0, 1000.0, 10000.0):
        assert buckets[le] == sum(v <= le for v in every)
    # the exponential histogram as classic buckets: every bucket count exact, cumulated over le
    exp = families["histogram:exp"]
    service = (("service_name", "shop"),)
    assert exp[("exp_count", service)] == 800.0
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in exp.items() if k[0] == "exp_bucket")
    everything = seen["exp"] + more["exp"]
    assert buckets[-1] == (math.inf, 800.0)
    for le, cumulative in buckets:
        # le is a bucket's upper bound: the values up to it (within float rounding of base**i) are counted
        below = sum(v <= le * (1 - 1e-9) for v in everything)
        at_most = sum(v <= le * (1 + 1e-9) for v in everything)
        assert below <= cumulative <= at_most


async def test_prometheus_summaries_up_down_counters_and_gauges(exporter: PrometheusExporter) -> None:
    conv = OtlpMetricsConverter()
    summary = pb.Metric(name="rpc_seconds", description="RPC latency")
    p = summary.summary.data_points.add(start_time_unix_nano=1, time_unix_nano=2 * 10**9, count=10, sum=3.5)
    p.quantile_values.add(quantile=0.5, value=0.2)
    p.quantile_values.add(quantile=0.99, value=math.nan)
    updown = pb.Metric(name="queue.depth")
    updown.sum.aggregation_temporality, updown.sum.is_monotonic = 1, False  # delta: changes of a level
    updown.sum.data_points.add(start_time_unix_nano=1, time_unix_nano=2 * 10**9, as_int=5)
    updown.sum.data_points.add(start_time_unix_nano=2 * 10**9, time_unix_nano=3 * 10**9, as_int=-2)
    gauge = pb.Metric(name="temp")
    gauge.gauge.data_points.add(time_unix_nano=2 * 10**9, as_double=21.5)
    out = conv.convert(request_of(summary, updown, gauge), 0.0)
    await exporter.write(Batch(METRICS, out.records))
    families = await scrape(exporter)
    svc = (("service_name", "svc"),)
    s = families["summary:rpc_seconds"]
    assert s[("rpc_seconds_count", svc)] == 10.0 and s[("rpc_seconds_sum", svc)] == 3.5
    assert s[("rpc_seconds", (("quantile", "0.5"), *svc))] == 0.2
    assert math.isnan(s[("rpc_seconds", (("quantile", "0.99"), *svc))])
    assert families["gauge:queue_depth"][("queue_depth", svc)] == 3.0
    assert families["gauge:temp"][("temp", svc)] == 21.5


def test_records_survive_the_buffer_and_the_dead_letter_queue(tmp_path: Path, delta_sdk: Sdk) -> None:
    """Records wait in buffers (msgpack) and may be dead-lettered (JSON lines): the OTLP source must survive."""
    record(delta_sdk, random.Random(SEED))
    records = convert(delta_sdk, OtlpMetricsConverter())
    again = decode_batch(encode_batch(Batch(METRICS, records, 1))).records
    assert again == records and all(r.source is not None and r.source["format"] == "otlp" for r in again)
    dlq = DeadLetterQueue(tmp_path, "out", 1 << 22)
    dlq.write(METRICS, records, ["rejected"] * len(records))
    dlq.close()
    (path,) = tmp_path.glob("*.jsonl")
    assert [e["record"] for e in read_dead_letters(path)] == records
