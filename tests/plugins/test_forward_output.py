"""`forward` output into our own `forward` input (collector -> collector) and a minimal forward server.

The real output driver sends; the receiving end is the real `forward` input over real sockets (with its
shared-key handshake and TLS), which acks a chunk only once its batch is safe. Covered: PackedForward and
CompressedPackedForward, tags and event times, the handshake (a wrong key is refused and nothing is
delivered), TLS, load balancing, failover from a dead or silent server without loss, and a down server used
again after `recover_after`. No Fluent Bit or Fluentd can be installed on these machines (neither is in the
configured Debian archive, and there is no Ruby for Fluentd's gem), so no third-party server is tested here.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from collector.testing import free_port, wait_for
from collector_plugins.inputs.forward.input import Forward, ForwardConfig
from collector_plugins.outputs.forward.output import ForwardOutput, ForwardOutputConfig
from collector_plugins.outputs.forward.servers import Servers, parse_address
from tests.forward_sink import ForwardSink
from tests.plugins.aws_stream_fakes import DriverHarness
from tests.plugins.receiver_support import Sink, make_context, running, self_signed_cert


def harness(tmp_path: Path, servers: list[str], **body: Any) -> DriverHarness:
    config = {"type": "forward", "servers": servers, "batch": {"timeout": 0}, "ack_timeout": "2s", **body}
    (tmp_path / "out").mkdir(exist_ok=True)
    return DriverHarness(tmp_path / "out", ForwardOutput, config)


@asynccontextmanager
async def receiving(tmp_path: Path, **options: Any) -> AsyncIterator[tuple[Sink, str]]:
    """Our `forward` input on a free port; yields what it emitted and its address."""
    sink = Sink()
    options.setdefault("listen", "tcp://127.0.0.1:0")
    ctx = make_context(tmp_path, sink)
    plugin = Forward(ForwardConfig(type="forward", **options), ctx)
    async with running(plugin, ctx):
        yield sink, f"127.0.0.1:{plugin.listeners.port()}"


def logs(n: int, start: int = 0, **fields: Any) -> list[dict[str, Any]]:
    return [{"timestamp": 1764176400.123456 + i, "message": f"line {i}", "n": i, **fields} for i in range(start, n)]


@pytest.mark.parametrize("compress", ["none", "gzip"])
async def test_collector_to_collector_with_shared_key_and_tls(tmp_path: Path, compress: str) -> None:
    cert, key = self_signed_cert(tmp_path)
    tls_server = {"cert_file": str(cert), "key_file": str(key)}
    async with receiving(tmp_path, shared_key="s3cret", tls=tls_server, message_key=None) as (sink, address):
        h = harness(
            tmp_path,
            [address],
            shared_key="s3cret",
            tls={"ca_file": str(cert), "server_name": "127.0.0.1"},
            compress=compress,
            tag="app.{svc}",
        )
        await h.run(logs(300, svc="api"), logs(600, 300, svc="db"))
    got = sink.records
    assert sorted(r["n"] for r in got) == list(range(600))
    first = next(r for r in got if r["n"] == 0)
    assert first["tag"] == "app.api" and first["message"] == "line 0" and first["svc"] == "api"
    assert first["timestamp"] == pytest.approx(1764176400.123456, abs=1e-6)  # EventTime keeps the fraction
    assert {r["tag"] for r in got if r["n"] >= 300} == {"app.db"}
    assert h.output.chunks_acked == h.output.chunks_sent >= 2 and h.dead() == []


async def test_a_wrong_shared_key_delivers_nothing_and_is_retried(tmp_path: Path) -> None:
    async with receiving(tmp_path, shared_key="right") as (sink, address):
        h = harness(tmp_path, [address], shared_key="wrong", retry={"max_retries": 2, "initial_backoff": 0.01})
        await h.output.start()
        task = h.start()
        try:
            await h.feed(logs(5))
            await wait_for(lambda: h.output.server_failures >= 2, timeout=10)
        finally:
            task.cancel()
            await h.output.stop()
    assert sink.records == [] and h.output.chunks_acked == 0
    h.dlq.close()


async def test_balanced_over_servers_and_failover_from_a_dead_one(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    with ForwardSink() as one, ForwardSink() as two:
        h = harness(tmp_path, [one.address, dead, two.address], recover_after="1h", batch={"max_events": 10})
        await h.run(*[logs(10 * (k + 1), 10 * k) for k in range(6)])
        assert h.output.server_failures == 1  # the dead one, once: then skipped
        got = sorted(r["n"] for s in (one, two) for _, _, r in s.records)
        assert got == list(range(60))  # nothing lost, nothing twice
        assert one.records and two.records  # both live servers took requests
        assert h.dead() == []


async def test_a_server_that_never_acks_loses_nothing(tmp_path: Path) -> None:
    with ForwardSink(ack=False) as silent, ForwardSink() as good:
        h = harness(tmp_path, [silent.address, good.address], ack_timeout="300ms", recover_after="1h")
        await h.run(logs(50))
        assert sorted(r["n"] for _, _, r in good.records) == list(range(50))
        assert len(silent.chunks) == 1 and h.output.server_failures == 1  # took it, never answered: resent
        assert h.dead() == []


async def test_a_down_server_is_used_again_after_recover_after(tmp_path: Path) -> None:
    port = free_port()
    with ForwardSink() as other:
        h = harness(tmp_path, [f"127.0.0.1:{port}", other.address], recover_after="200ms")
        await h.output.start()
        task = h.start()
        try:
            await h.feed(logs(1))
            await wait_for(h.settled)
            assert h.output.server_failures == 1 and len(other.records) == 1
            with ForwardSink(port=port) as back:
                first = h.output.servers.servers[0]
                await wait_for(lambda: first.down_until <= time.monotonic(), timeout=5)
                for k in (1, 2):  # two requests: balancing starts each at the next server in turn
                    await h.feed(logs(k + 1, k))
                    await wait_for(h.settled)
                assert len(back.records) == 1 and len(other.records) == 2
        finally:
            task.cancel()
            await h.output.stop()
        assert h.dead() == []


def test_server_order_and_addresses() -> None:
    assert parse_address("a:1") == ("a", 1) and parse_address("a") == ("a", 24224)
    assert parse_address("[::1]:5") == ("::1", 5)
    servers = Servers(["a:1", "b:2", "c:3"], recover_after=60)
    assert [s.host for s in servers.order()] == ["a", "b", "c"]
    assert [s.host for s in servers.order()] == ["b", "c", "a"]
    servers.mark_down(servers.servers[2])
    assert [s.host for s in servers.order()] == ["a", "b", "c"]  # c last while down
    assert [s.host for s in servers.order()] == ["a", "b", "c"]  # from a: b's turn... a next healthy after c
    with pytest.raises(ValidationError, match="port out of range"):
        ForwardOutputConfig(type="forward", inputs=["x"], servers=["a:70000"])
    with pytest.raises(ValidationError, match="needs `shared_key`"):
        ForwardOutputConfig(type="forward", inputs=["x"], servers=["a"], username="u", password="p")  # type: ignore[arg-type]
