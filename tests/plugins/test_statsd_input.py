"""The `statsd` input: the protocol, aggregation, and the real `statsd` client over UDP and TCP."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import statsd

from collector.api import HostFacts, InputContext
from collector.events import Batch, Metric
from collector.testing import wait_for
from collector_plugins.common.metrics.aggregator import Aggregator
from collector_plugins.common.metrics.distribution import as_distribution
from collector_plugins.inputs.statsd.input import StatsdConfig, StatsdInput
from collector_plugins.inputs.statsd.protocol import MalformedLine, StatsdParser, parse_meta


class Losses(dict[str, int]):
    def __call__(self, reason: str, events: int) -> None:
        self[reason] = self.get(reason, 0) + events


def parser(max_series: int = 1000, max_cache: int = 10_000) -> tuple[StatsdParser, Aggregator, Losses]:
    losses = Losses()
    agg = Aggregator(10.0, max_series, loss=losses, log=logging.getLogger("test.statsd"), component="s")
    return StatsdParser(agg, max_cache), agg, losses


def points(agg: Aggregator) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], Metric]:
    return {(m.type, m.name, tuple(sorted(m.tags.items()))): m for m in agg.flush_all()}


# ----------------------------------------------------------------- the protocol


def test_every_metric_type() -> None:
    p, agg, _ = parser()
    malformed = p.feed(
        b"req:1|c\nreq:2|c|@0.5\nreq:-1|c\n"  # 1 + 2/0.5 - 1
        b"temp:20|g\ntemp:+5|g\ntemp:-3|g\n"  # 20 + 5 - 3
        b"lat:10|ms\nlat:30|ms|@0.5\n"  # 30 counted twice
        b"size:100|h\nsize:200|d\n"
        b"users:alice|s\nusers:bob|s\nusers:alice|s\n"
    )
    assert malformed == 0 and p.lines == 13
    out = points(agg)
    assert out[("counter", "req", ())].value == 4.0
    assert out[("gauge", "temp", ())].value == 22.0
    lat = out[("distribution", "lat", ())]
    assert lat.unit == "Milliseconds"
    assert lat.value["values"] == [10.0, 30.0] and lat.value["counts"] == [1.0, 2.0]
    assert lat.value["count"] == 3.0 and lat.value["sum"] == 70.0
    assert out[("distribution", "size", ())].value["values"] == [100.0, 200.0]
    assert out[("set", "users", ())].value == ["alice", "bob"]


def test_dogstatsd_tags_and_extensions() -> None:
    p, agg, _ = parser()
    p.feed(
        b"page.views:1|c|#env:prod,route:/home\n"
        b"page.views:1|c|#route:/home,env:prod\n"  # same series, tags in another order
        b"page.views:1|c|@1|#env:dev\n"
        b"page.views:1|c|#canary\n"  # a tag without a value
        b"lat:1:2:3|d|#env:prod\n"  # several values in one line
        b"page.views:1|c|#env:prod,route:/home|c:abc123|T1656581400\n"  # container id and timestamp ignored
        b"_e{5,4}:title|text|#env:prod\n_sc|my.check|0\n"  # an event and a service check: not metrics
    )
    assert (p.malformed, p.ignored) == (0, 2)
    out = points(agg)
    assert out[("counter", "page.views", (("env", "prod"), ("route", "/home")))].value == 3.0
    assert out[("counter", "page.views", (("env", "dev"),))].value == 1.0
    assert out[("counter", "page.views", (("canary", "true"),))].value == 1.0
    assert out[("distribution", "lat", (("env", "prod"),))].value["values"] == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    "line",
    [
        b"no_separator",
        b"name:1",
        b":1|c",
        b"name:1|x",
        b"name:abc|c",
        b"name:nan|c",
        b"name:inf|ms",
        b"name:1|c|@0",
        b"name:1|c|@2",
        b"name:1|c|@abc",
        b"name:|g",
        b"name:|s",
        b"name:1:x|d",
    ],
)
def test_malformed_lines_are_counted_and_skipped(line: bytes) -> None:
    p, agg, _ = parser()
    assert p.feed(line + b"\nok:1|c\n") == 1
    assert p.malformed == 1
    first = p.take_first_malformed()
    assert first is not None and first[0] == line
    assert [m.name for m in agg.flush_all()] == ["ok"]


def test_a_known_bad_shape_is_reported_again_in_the_next_interval() -> None:
    p, _, _ = parser()
    p.feed(b"x:1|zz")
    assert p.take_first_malformed() == (b"x:1|zz", "unknown metric type b'zz'")
    p.feed(b"x:1|zz")  # served from the cache this time
    assert p.take_first_malformed() == (b"x:1|zz", "unknown metric type b'zz'")


def test_parse_meta() -> None:
    assert parse_meta(b"a", b"c|@0.25|#k:v") == (0, 4.0, ("counter", "a", (("k", "v"),)), None)
    assert parse_meta(b"a", b"g|@0.25")[1] == 1.0  # sample rates do not weight gauges
    with pytest.raises(MalformedLine):
        parse_meta(b"", b"c")


def test_gauge_deltas_continue_from_the_previous_interval() -> None:
    p, agg, _ = parser()
    p.feed(b"g:10|g")
    agg.flush(agg.current_start + agg.interval)
    p.feed(b"g:+5|g\ng:-1|g")
    (point,) = agg.flush(agg.current_start + agg.interval)
    assert point.value == 14.0


def test_series_limit_and_cache_bound() -> None:
    p, agg, losses = parser(max_series=2, max_cache=3)
    p.feed(b"\n".join(f"m{i}:1|c".encode() for i in range(10)))
    p.feed(b"m0:1|c")
    assert agg.dropped == 8
    assert len(p._cache) <= 3  # cleared when it outgrew its bound, still correct
    out = agg.flush_all()
    assert {m.name: m.value for m in out} == {"m0": 2.0, "m1": 1.0}
    assert losses == {"cardinality_limit": 8}


# ----------------------------------------------------------------- the input with real clients


class Harness:
    def __init__(self, inp: StatsdInput, ctx: InputContext, batches: list[Batch], losses: Losses) -> None:
        self.inp, self.ctx, self.batches, self.losses = inp, ctx, batches, losses
        self.task: asyncio.Task[None] | None = None

    @property
    def points(self) -> list[Metric]:
        return [m for b in self.batches for m in b.records]

    def port(self, index: int = 0) -> int:
        return self.inp.ports()[index]

    async def stop(self) -> list[Metric]:
        self.ctx.stopping.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)
        await self.inp.stop()
        return self.points


@pytest.fixture
async def harness(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    made: list[Harness] = []

    async def make(**options: Any) -> Harness:
        config = StatsdConfig.model_validate(
            {"type": "statsd", "listen": ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"], **options}
        )
        batches: list[Batch] = []
        losses = Losses()

        async def emit(batch: Batch) -> None:
            batches.append(batch)

        ctx = InputContext(
            "statsd", logging.getLogger("test.statsd"), tmp_path, HostFacts("h"), emit, asyncio.Event(), loss=losses
        )
        inp = StatsdInput(config, ctx)
        await inp.start()
        h = Harness(inp, ctx, batches, losses)
        h.task = asyncio.create_task(inp.run(ctx))
        made.append(h)
        return h

    yield make
    for h in made:
        if h.task is not None and not h.task.done():
            await h.stop()


async def test_real_client_over_udp(harness: Any) -> None:
    h = await harness()
    client = statsd.StatsClient("127.0.0.1", h.port(0), prefix="app")
    for _ in range(10):
        client.incr("requests")
    client.decr("requests", 3)
    client.gauge("queue", 10)
    client.gauge("queue", 5, delta=True)
    client.gauge("temperature", -4)  # sent by the client as 0 then -4
    for ms in (10, 20, 30, 40):
        client.timing("latency", ms)
    client.set("visitors", "alice")
    client.set("visitors", "bob")
    with client.pipeline() as pipe:  # many lines per datagram
        for _ in range(50):
            pipe.incr("piped")
    client.close()
    await wait_for(lambda: h.inp.parser.lines >= 11 + 2 + 2 + 4 + 2 + 50, timeout=5)
    out = {(m.type, m.name): m for m in await h.stop()}
    assert out[("counter", "app.requests")].value == 7.0
    assert out[("gauge", "app.queue")].value == 15.0
    assert out[("gauge", "app.temperature")].value == -4.0
    latency = out[("distribution", "app.latency")]
    assert as_distribution(latency.value).quantile(0.5) == 20.0
    assert latency.unit == "Milliseconds"
    assert out[("set", "app.visitors")].value == ["alice", "bob"]
    assert out[("counter", "app.piped")].value == 50.0
    assert h.inp.datagrams < 11 + 2 + 2 + 4 + 2 + 50  # the pipeline packed lines together
    assert h.inp.parser.malformed == 0


async def test_real_client_over_tcp(harness: Any) -> None:
    h = await harness()

    def send() -> None:
        client = statsd.TCPStatsClient("127.0.0.1", h.port(1), prefix="tcp")
        for i in range(200):
            client.incr("hits", 2)
            client.timing("work", i % 10)
        with client.pipeline() as pipe:
            pipe.gauge("level", 3)
            pipe.set("ids", 7)
        client.close()

    await asyncio.to_thread(send)
    await wait_for(lambda: h.inp.parser.lines >= 402, timeout=5)
    out = {(m.type, m.name): m for m in await h.stop()}
    assert out[("counter", "tcp.hits")].value == 400.0
    work = as_distribution(out[("distribution", "tcp.work")].value)
    assert work.count == 200 and work.sum == 20 * sum(range(10))
    assert out[("gauge", "tcp.level")].value == 3.0
    assert out[("set", "tcp.ids")].value == ["7"]


async def test_points_are_emitted_per_interval_with_their_window(harness: Any) -> None:
    h = await harness(interval="1s")
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.sendto(b"beat:1|c", ("127.0.0.1", h.port(0)))
    await wait_for(lambda: bool(h.points), timeout=5)  # emitted at the end of the window, without a stop
    (point,) = h.points
    assert point.interval == 1.0
    assert point.timestamp == int(point.timestamp) and time.time() - point.timestamp < 3
    sender.close()
    await h.stop()


async def test_malformed_lines_are_counted_in_the_loss_ledger_and_logged_once(
    harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    h = await harness(max_line_bytes=64)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(5):
        udp.sendto(b"good:1|c\nbad line\nworse:x|c", ("127.0.0.1", h.port(0)))
    udp.close()

    def tcp_send() -> None:
        with socket.create_connection(("127.0.0.1", h.port(1))) as conn:
            conn.sendall(b"t:1|c\n" + b"x" * 200 + b"\nt:1|c\n")

    await asyncio.to_thread(tcp_send)
    await wait_for(lambda: h.inp.parser.lines >= 17, timeout=5)
    with caplog.at_level(logging.WARNING, logger="test.statsd"):
        out = await h.stop()
    assert {m.name: m.value for m in out} == {"good": 5.0, "t": 2.0}
    assert h.losses == {"malformed": 11}
    warnings = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].fields["lines"] == 11  # type: ignore[attr-defined]
    assert h.inp.counters()["malformed_lines"] == 11


async def test_udp_bursts_lose_nothing(harness: Any) -> None:
    h = await harness()
    port = h.port(0)
    lines_per_datagram, datagrams = 40, 1250  # 50,000 lines as fast as one thread can send them

    def blast() -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        payload = b"\n".join(b"burst.%d:1|c|#k:%d" % (i % 20, i % 3) for i in range(lines_per_datagram))
        for _ in range(datagrams):
            sock.sendto(payload, ("127.0.0.1", port))
        sock.close()

    await asyncio.to_thread(blast)
    total = lines_per_datagram * datagrams
    await wait_for(lambda: h.inp.parser.lines >= total, timeout=10)
    out = await h.stop()
    assert sum(m.value for m in out) == total
    assert h.losses == {}


async def test_a_port_in_use_fails_the_start(tmp_path: Path) -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    config = StatsdConfig.model_validate({"type": "statsd", "listen": [f"udp://127.0.0.1:{taken.getsockname()[1]}"]})
    ctx = InputContext("s", logging.getLogger("t"), tmp_path, HostFacts("h"), None, asyncio.Event())
    with pytest.raises(OSError):
        await StatsdInput(config, ctx).start()
    taken.close()


@pytest.mark.parametrize(
    "options",
    [
        {"interval": "7s"},
        {"interval": "500ms"},
        {"listen": []},
        {"listen": ["udp://127.0.0.1:8125", "127.0.0.1:8125"]},
        {"listen": ["http://127.0.0.1:1"]},
        {"max_series": 0},
    ],
)
def test_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        StatsdConfig.model_validate({"type": "statsd", **options})


def test_a_change_that_would_overflow_a_series_is_refused_and_the_sum_kept() -> None:
    statsd_parser, agg, _ = parser()
    lines = [b"hits:1e308|c", b"hits:1e308|c", b"rare:-1e308|c|@0.5", b"level:1e308|g", b"level:+1e308|g"]
    assert statsd_parser.feed(b"\n".join(lines)) == 3
    values = {m.name: m.value for m in agg.flush_all()}
    assert values["hits"] == 1e308 and values["level"] == 1e308 and "rare" not in values
    assert statsd_parser.first_malformed is not None
