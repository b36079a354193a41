"""Taps on the routing path: rate limit, sampling, the bounded queue, snapshots (collector/tap.py)."""

from __future__ import annotations

import random
from pathlib import Path

import aiohttp
import orjson

from collector.api import HostFacts
from collector.channel import Channel
from collector.config import parse_config
from collector.events import LOGS, METRICS, Batch, Metric
from collector.http import ApiServer
from collector.registry import load_registry
from collector.routing import Route, Router
from collector.runtime import Runtime
from collector.stats import ComponentStats, RuntimeCollector, make_registry
from collector.tap import Tap, TapHub, encode_line
from collector.testing import wait_for


def router_to(channel: Channel) -> Router:
    router = Router({"proc": ComponentStats("proc", "processors", "add_fields")}, "proc")
    router.routes = (Route("out", channel, frozenset({LOGS, METRICS}), frozenset()),)
    return router


async def test_a_tap_sees_what_the_router_passes_on_rate_limited_and_bounded() -> None:
    channel = Channel("out", 100_000)
    router = router_to(channel)
    tap = Tap(rate=50, sample=1.0, capacity=30)
    router.taps = (tap,)
    batch = Batch(LOGS, [{"message": f"m{i}"} for i in range(100)])
    await router.send(batch)
    # The consumer got the whole batch; the tap at most a second's worth (50), of which its queue holds 30.
    assert channel.events == 100
    assert [r[3]["message"] for r in tap.queue] == [f"m{i}" for i in range(30)]
    assert tap.queue[0][:3] == ("proc", "processors", LOGS)
    assert tap.rate_limited == 50 and tap.dropped == 20
    # A snapshot: what happens to the record downstream does not change what the tap shows.
    batch.records[0]["message"] = "changed"
    assert tap.queue[0][3]["message"] == "m0"
    # No tokens left within the same instant: the next batch is rate limited entirely, and try_send taps too.
    tap.queue.clear()
    assert router.try_send(Batch(LOGS, [{"message": "x"}] * 10)) == 0
    assert len(tap.queue) == 0 and tap.rate_limited >= 59


async def test_sampling_keeps_about_the_fraction_and_untapped_routers_do_nothing() -> None:
    channel = Channel("out", 100_000)
    router = router_to(channel)
    tap = Tap(rate=1_000_000, sample=0.1, capacity=100_000, rng=random.Random(7))
    router.taps = (tap,)
    await router.send(Batch(LOGS, [{"n": i} for i in range(10_000)]))
    assert 800 < len(tap.queue) < 1200
    router.taps = ()
    tap.queue.clear()
    await router.send(Batch(LOGS, [{"n": 1}]))
    assert not tap.queue


def test_encode_line_handles_bytes_metrics_and_odd_values() -> None:
    tap = Tap(rate=10, sample=1.0)
    metric = Metric("cpu", "gauge", 1.5, tags={"host": "a"})
    tap.offer("m", "inputs", Batch(METRICS, [metric]))
    line = orjson.loads(encode_line(*tap.queue[0]))
    assert line["kind"] == METRICS and line["record"]["name"] == "cpu" and line["record"]["tags"] == {"host": "a"}
    raw = orjson.loads(encode_line("c", "inputs", LOGS, {"message": b"caf\xc3\xa9", "bin": b"\xff", 1: {2}}))
    assert raw["record"] == {"message": "café", "bin": {"base64": "/w=="}, "1": [2]}


async def test_the_endpoint_detaches_a_tap_when_its_client_goes_away(tmp_path: Path) -> None:
    runtime = Runtime(tmp_path, HostFacts("h"))
    text = """
inputs: {gen: {type: generator, message: hi, rate: 2000, batch_size: 10}}
outputs: {hole: {type: blackhole, inputs: [gen]}}
"""
    await runtime.apply(parse_config(text, "c.yaml", load_registry(), environ={}).graph)
    server = ApiServer(
        make_registry(RuntimeCollector(runtime.all_stats, dict)), lambda: {}, lambda: (True, ""), taps=TapHub(runtime)
    )
    await server.start("127.0.0.1", 0)
    assert server.bound is not None
    base = f"http://127.0.0.1:{server.bound[1]}/tap"
    try:
        async with aiohttp.ClientSession() as session:
            for query, status in (
                ("component=gen&rate=x", 400),
                ("rate=5", 400),
                ("component=gen&sample=2", 400),
                ("component=gen&rate=inf", 400),
            ):
                async with session.get(f"{base}?{query}") as r:
                    assert r.status == status
            async with session.get(f"{base}?component=nope") as r:
                assert r.status == 404 and (await r.json())["components"] == ["gen", "hole"]
            async with session.get(f"{base}?component=*&rate=1000") as r:
                assert r.status == 200
                first = orjson.loads(await r.content.readline())
                assert first["component"] in {"gen", "hole"} and first["record"]["message"] == "hi"
                assert len(runtime.routers["gen"].taps) == 1 and len(runtime.outputs["hole"].taps) == 1
            # Closed by the client: the tap is detached, routing is back to no taps at all.
        await wait_for(lambda: not runtime.routers["gen"].taps and not runtime.outputs["hole"].taps, timeout=5)
    finally:
        await server.stop()
        await runtime.shutdown(5)
