"""Taps on the routing path: rate limit, sampling, the bounded queue, snapshots (collector/tap.py)."""

from __future__ import annotations

import random

import orjson

from collector.channel import Channel
from collector.events import LOGS, METRICS, Batch, Metric
from collector.routing import Route, Router
from collector.stats import ComponentStats
from collector.tap import Tap, encode_line


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
