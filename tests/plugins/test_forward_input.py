"""The `forward` input over real sockets: modes, acks only once safe, handshake, TLS, unix, errors, backpressure,
and acks through the real runtime with memory and disk buffers."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import ssl
import time
import tracemalloc
from pathlib import Path
from typing import Any

import msgpack
import pytest
from pydantic import ValidationError

from collector.api import HostFacts, InputContext
from collector.config import parse_config
from collector.registry import load_registry
from collector.runtime import Runtime
from collector.testing import Capture, free_port, wait_for
from collector_plugins.common.listening.stream_server import EVICT_MIN_IDLE
from collector_plugins.inputs.forward.input import Forward, ForwardConfig
from collector_plugins.inputs.forward.protocol import encode_event_time
from tests.plugins.receiver_support import Sink, make_context, running, self_signed_cert


def make(tmp_path: Path, sink: Sink, **options: Any) -> tuple[Forward, InputContext]:
    options.setdefault("listen", "tcp://127.0.0.1:0")
    ctx = make_context(tmp_path, sink)
    return Forward(ForwardConfig(type="forward", **options), ctx), ctx


class Client:
    """A forward client written against the spec: sends messages, reads what the server answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.unpacker = msgpack.Unpacker(raw=False)

    @classmethod
    async def connect(cls, port: int, **kwargs: Any) -> Client:
        return cls(*await asyncio.open_connection("127.0.0.1", port, **kwargs))

    async def send(self, *messages: Any) -> None:
        self.writer.write(b"".join(msgpack.packb(m, use_bin_type=True) for m in messages))
        await self.writer.drain()

    async def receive(self, timeout: float = 5) -> Any:
        while True:
            for message in self.unpacker:
                return message
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.unpacker.feed(data)

    async def closed_by_server(self) -> bool:
        try:
            return await asyncio.wait_for(self.reader.read(), 5) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.writer.close()


def entries(*logs: str) -> bytes:
    return b"".join(msgpack.packb([encode_event_time(time.time()), {"log": log}]) for log in logs)


async def test_all_four_modes_and_their_acks(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        client = await Client.connect(plugin.listeners.port())
        await client.send(
            ["app.message", encode_event_time(1764176400.5), {"log": "m1", "k": "v"}, {"chunk": "c-message"}],
            ["app.forward", [[1764176401, {"log": "f1"}], [1764176402, {"log": "f2"}]], {"chunk": "c-forward"}],
            ["app.packed", entries("p1", "p2"), {"chunk": "c-packed", "size": 2}],
            ["app.gzip", gzip.compress(entries("g1")), {"chunk": "c-gzip", "compressed": "gzip"}],
            ["app.noack", 1764176403, {"log": "n1"}],
        )
        acks = [await client.receive() for _ in range(4)]
        await wait_for(lambda: len(sink.records) == 7)
        client.close()
    assert acks == [{"ack": c} for c in ("c-message", "c-forward", "c-packed", "c-gzip")]
    assert sink.messages() == ["m1", "f1", "f2", "p1", "p2", "g1", "n1"]
    first = sink.records[0]
    assert first == {"message": "m1", "k": "v", "timestamp": pytest.approx(1764176400.5), "tag": "app.message"}
    assert [r["tag"] for r in sink.records][1:] == ["app.forward"] * 2 + ["app.packed"] * 2 + ["app.gzip", "app.noack"]
    assert plugin.counters()["acks_sent"] == 4 and plugin.messages == 5 and plugin.events == 7


async def test_ack_waits_until_the_batch_is_safe(tmp_path: Path) -> None:
    sink = Sink()
    sink.release_acks = False  # downstream holds the batches: not durable, not delivered yet
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        client = await Client.connect(plugin.listeners.port())
        await client.send(["t", entries("a"), {"chunk": "one"}])
        await wait_for(lambda: len(sink.held) == 1)
        await client.send(["t", entries("b"), {"chunk": "two"}])
        await wait_for(lambda: len(sink.held) == 2)
        with pytest.raises(TimeoutError):
            await client.receive(timeout=0.3)
        sink.held[1].release()  # the later batch is safe first: acks still go out in order
        with pytest.raises(TimeoutError):
            await client.receive(timeout=0.2)
        sink.held[0].release()
        assert [await client.receive(), await client.receive()] == [{"ack": "one"}, {"ack": "two"}]
        client.close()


async def test_chunk_without_valid_events_is_acked_at_once_and_bad_events_counted(tmp_path: Path) -> None:
    sink = Sink()
    sink.release_acks = False
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        client = await Client.connect(plugin.listeners.port())
        await client.send(["t", [["bad time", {"log": "x"}], [1, "not a map"]], {"chunk": "empty"}])
        assert await client.receive() == {"ack": "empty"}
        client.close()
    assert sink.losses["invalid_event"] == 2 and plugin.invalid_events == 2


async def test_a_malformed_frame_closes_only_its_connection(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        port = plugin.listeners.port()
        good = await Client.connect(port)
        bad = await Client.connect(port)
        bad.writer.write(msgpack.packb(["t", 1, {"log": "before the error"}]) + msgpack.packb({"not": "forward"}))
        assert await bad.closed_by_server()
        garbage = await Client.connect(port)
        garbage.writer.write(b"\xc1\xc1\xc1 not msgpack")
        assert await garbage.closed_by_server()
        map_keyed_by_map = await Client.connect(port)
        map_keyed_by_map.writer.write(b"\x81\x80\x00")  # {{}: 0}: valid msgpack, unhashable in Python
        assert await map_keyed_by_map.closed_by_server()
        await good.send(["t", entries("still fine"), {"chunk": "ok"}])
        assert await good.receive() == {"ack": "ok"}
        for c in (good, bad, garbage, map_keyed_by_map):
            c.close()
    assert sorted(sink.messages()) == ["before the error", "still fine"]
    assert plugin.protocol_errors == 3
    assert plugin.counters()["connections_closed_on_error"] == 3
    assert any("expected a forward message array" in str(getattr(r, "fields", "")) for r in caplog.records)


async def test_message_over_the_size_limit_closes_the_connection(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, max_message_bytes="4KiB")
    async with running(plugin, ctx):
        port = plugin.listeners.port()
        client = await Client.connect(port)
        await client.send(["t", 1, {"log": "x" * 5000}])
        assert await client.closed_by_server()
        bomb = await Client.connect(port)
        await bomb.send(["t", gzip.compress(entries("y" * 10_000)), {"compressed": "gzip", "chunk": "z"}])
        assert await bomb.closed_by_server()
        ok = await Client.connect(port)
        await ok.send(["t", 1, {"log": "small"}, {"chunk": "s"}])
        assert await ok.receive() == {"ack": "s"}
        for c in (client, bomb, ok):
            c.close()
    assert sink.messages() == ["small"]
    assert plugin.protocol_errors == 2


def sha512(*parts: str | bytes) -> str:
    return hashlib.sha512(b"".join(p.encode() if isinstance(p, str) else p for p in parts)).hexdigest()


async def handshake(client: Client, key: str, user: str = "", password: str = "") -> list[Any]:
    helo = await client.receive()
    assert helo[0] == "HELO" and len(helo[1]["nonce"]) == 16
    nonce, auth = helo[1]["nonce"], helo[1]["auth"]
    digest = sha512(auth, user, password) if user else ""
    await client.send(["PING", "client-host", "salt", sha512("salt", "client-host", nonce, key), user, digest])
    pong = await client.receive()
    if pong[1]:
        assert pong[4] == sha512("salt", pong[3], nonce, key)  # the server proves it knows the key too
    return pong


async def test_shared_key_handshake(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, shared_key="s3cret", self_hostname="collector-1")
    async with running(plugin, ctx):
        port = plugin.listeners.port()
        client = await Client.connect(port)
        pong = await handshake(client, "s3cret")
        assert pong[:4] == ["PONG", True, "", "collector-1"]
        await client.send(["t", entries("authenticated"), {"chunk": "k"}])
        assert await client.receive() == {"ack": "k"}

        wrong = await Client.connect(port)
        assert (await handshake(wrong, "guess"))[:3] == ["PONG", False, "shared key mismatch"]
        assert await wrong.closed_by_server()

        rude = await Client.connect(port)
        await rude.receive()  # HELO
        await rude.send(["t", 1, {"log": "no handshake"}])
        assert await rude.closed_by_server()
        for c in (client, wrong, rude):
            c.close()
    assert sink.messages() == ["authenticated"]
    assert plugin.auth_failures == 2


async def test_handshake_with_users(tmp_path: Path) -> None:
    sink = Sink()
    users = [{"username": "bit", "password": "pw"}]
    plugin, ctx = make(tmp_path, sink, shared_key="k", users=users)
    async with running(plugin, ctx):
        port = plugin.listeners.port()
        ok = await Client.connect(port)
        assert (await handshake(ok, "k", "bit", "pw"))[1] is True
        bad = await Client.connect(port)
        assert (await handshake(bad, "k", "bit", "nope"))[:3] == ["PONG", False, "username/password mismatch"]
        ok.close()
        bad.close()


async def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, tls={"cert_file": str(cert), "key_file": str(key)})
    client_context = ssl.create_default_context(cafile=str(cert))
    async with running(plugin, ctx):
        port = plugin.listeners.port()
        client = await Client.connect(port, ssl=client_context, server_hostname="127.0.0.1")
        await client.send(["t", entries("over tls"), {"chunk": "tls"}])
        assert await client.receive() == {"ack": "tls"}
        client.close()
        plain = await Client.connect(port)  # a client that does not speak TLS gets nothing in
        await plain.send(["t", 1, {"log": "plaintext"}])
        assert await plain.closed_by_server()
        plain.close()
    assert sink.messages() == ["over tls"]


async def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "fwd.sock"
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, listen=f"unix://{path}", socket_mode="0600")
    async with running(plugin, ctx):
        client = Client(*await asyncio.open_unix_connection(str(path)))
        await client.send(["t", [[1, {"log": "over unix"}]], {"chunk": "u"}])
        assert await client.receive() == {"ack": "u"}
        client.close()
    assert sink.messages() == ["over unix"]


async def test_backpressure_blocks_the_client_without_loss(tmp_path: Path) -> None:
    sink = Sink()
    sink.open.clear()
    plugin, ctx = make(tmp_path, sink)
    chunk = entries(*(f"{i:06d} " + "z" * 200 for i in range(1000)))  # ~220 KB per message
    async with running(plugin, ctx):
        client = await Client.connect(plugin.listeners.port())

        async def send_all() -> None:
            for n in range(150):  # ~33 MB
                await client.send(["t", chunk, {"chunk": f"c{n}"}])

        sending = asyncio.ensure_future(send_all())
        await wait_for(lambda: sink.waiting == 1)
        await asyncio.sleep(0.5)  # not a wait: the client must stay blocked for a while
        assert not sending.done()  # the client is blocked: its connection is not read
        sink.open.set()
        await asyncio.wait_for(sending, 30)
        acks = [await client.receive() for _ in range(150)]
        client.close()
    assert acks == [{"ack": f"c{n}"} for n in range(150)]
    assert len(sink.records) == 150_000


async def test_stop_sends_acks_that_arrive_during_the_drain(tmp_path: Path) -> None:
    sink = Sink()
    sink.release_acks = False
    plugin, ctx = make(tmp_path, sink)
    await plugin.start()
    task = asyncio.ensure_future(plugin.run(ctx))
    client = await Client.connect(plugin.listeners.port())
    await client.send(["t", entries("last"), {"chunk": "final"}])
    await wait_for(lambda: len(sink.held) == 1)
    ctx.stopping.set()
    await asyncio.sleep(0.1)  # not a wait: the input must not stop before the ack it waits for
    assert not task.done()  # waiting for the ack of what it handed on
    sink.release_held()
    assert await client.receive() == {"ack": "final"}
    await asyncio.wait_for(task, 5)
    await plugin.stop()
    assert await client.closed_by_server()
    client.close()


async def test_acks_through_the_runtime_memory_buffer_waits_for_delivery_disk_for_durability(
    tmp_path: Path,
) -> None:
    capture = Capture()
    registry = load_registry()
    registry.add(capture.output)
    port = free_port()
    config = parse_config(
        f"""
inputs:
  fwd: {{type: forward, listen: "tcp://127.0.0.1:{port}"}}
outputs:
  slow: {{type: capture, inputs: [fwd], delay: 0.4}}
  stuck:
    type: capture
    inputs: [fwd]
    delay: 3600
    buffer: {{type: disk, max_bytes: 64MiB, fsync: always}}
""",
        "c.yaml",
        registry,
        environ={},
    )
    runtime = Runtime(tmp_path, HostFacts("h"))
    await runtime.apply(config.graph)
    await wait_for(lambda: runtime.stats["fwd"].state == "running")
    client = await Client.connect(port)
    sent = time.monotonic()
    await client.send(["t", entries("durable"), {"chunk": "d1"}])
    # The disk buffer holds it durably at once, but the memory-buffered output must deliver it first.
    assert await client.receive() == {"ack": "d1"}
    assert time.monotonic() - sent >= 0.4
    assert [r["message"] for r in capture("slow")] == ["durable"]
    assert capture("stuck") == []  # never delivered there: safe on disk is enough
    client.close()
    await runtime.shutdown(1)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"listen": "udp://127.0.0.1:24224"}, "unsupported scheme"),
        ({"users": [{"username": "a", "password": "b"}]}, "users need shared_key"),
        ({"shared_key": ""}, "must not be empty"),
        ({"max_message_bytes": 10}, "max_message_bytes"),
        ({"tls": {"cert_file": "c"}}, "key_file"),
    ],
)
def test_config_errors(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        ForwardConfig(type="forward", **options)


def test_secrets_are_not_in_the_config_repr() -> None:
    config = ForwardConfig(type="forward", shared_key="hunter2", users=[{"username": "u", "password": "pw9"}])
    assert "hunter2" not in repr(config) and "pw9" not in repr(config)


def test_tls_handshake_and_acks_on_uvloop(tmp_path: Path) -> None:
    """The collector runs on uvloop: TLS, the handshake and acks work there too."""
    import uvloop

    cert, key = self_signed_cert(tmp_path)

    async def main() -> list[Any]:
        sink = Sink()
        tls = {"cert_file": str(cert), "key_file": str(key)}
        plugin, ctx = make(tmp_path, sink, tls=tls, shared_key="k")
        async with running(plugin, ctx):
            context = ssl.create_default_context(cafile=str(cert))
            client = await Client.connect(plugin.listeners.port(), ssl=context, server_hostname="127.0.0.1")
            assert (await handshake(client, "k"))[1] is True
            await client.send(["t", gzip.compress(entries("uv")), {"chunk": "uv1", "compressed": "gzip"}])
            answer = await client.receive()
            client.close()
        return [answer, sink.messages()]

    assert uvloop.run(main()) == [{"ack": "uv1"}, ["uv"]]


async def test_a_large_message_in_many_reads_is_measured_whole(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, max_message_bytes="64KiB")
    async with running(plugin, ctx):
        client = await Client.connect(plugin.listeners.port())
        await client.send(["t", 1, {"log": "fits"}])
        data = msgpack.packb(["t", entries(*["y" * 1000] * 100), {"chunk": "big"}], use_bin_type=True)  # ~110 KB
        for i in range(0, len(data), 4096):  # trickled in small reads
            client.writer.write(data[i : i + 4096])
            await client.writer.drain()
            await asyncio.sleep(0.001)  # not a wait: a client that trickles its message in
        assert await client.closed_by_server()
        client.close()
    assert sink.messages() == ["fits"]
    assert plugin.protocol_errors == 1


# -- bounded memory, whoever connects (issue 13) -------------------------------------------------------------


async def send_raw(port: int, data: bytes) -> Client:
    client = await Client.connect(port)
    client.writer.write(data)
    try:
        await client.writer.drain()
    except ConnectionResetError:
        pass  # the server closed the connection before taking everything
    return client


async def test_messages_that_decode_to_too_much_are_refused_before_they_are_built(tmp_path: Path) -> None:
    """A 30 MB message of one-byte empty maps would be gigabytes of dicts: refused, counted, memory stays small."""
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        port = plugin.listeners.port()
        tracemalloc.start()
        try:
            # Forward mode: [tag, array32 of 30M entries]: refused at the array header, nothing allocated.
            header = b"\x92\xa1t\xdd" + (30_000_000).to_bytes(4, "big")
            bomb = await send_raw(port, header + b"\x80" * 30_000_000)
            assert await bomb.closed_by_server()
            # Within every length limit but over max_message_values: refused while it is decoded.
            many = await Client.connect(port)
            await many.send(["t", 1, {"log": [{}] * 600_000}])
            assert await many.closed_by_server()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 100 * 1024 * 1024, f"{peak / 2**20:.0f} MiB traced"
        ok = await Client.connect(port)
        await ok.send(["t", 1, {"log": "fine"}, {"chunk": "c"}])
        assert await ok.receive() == {"ack": "c"}
        for c in (bomb, many, ok):
            c.close()
    assert sink.messages() == ["fine"]
    assert plugin.too_large == 2
    assert plugin.protocol_errors == 2


async def test_a_large_packed_chunk_is_handed_on_in_pieces_and_acked_once_all_are_safe(tmp_path: Path) -> None:
    sink = Sink()
    sink.release_acks = False
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        client = await Client.connect(plugin.listeners.port())
        logs = [f"event {i}" for i in range(60_000)]
        await client.send(["t", entries(*logs), {"chunk": "big"}])
        await wait_for(lambda: len(sink.records) == len(logs))
        assert len(sink.batches) > 1  # never decoded all at once
        assert all(b.ack is not None for b in sink.batches)  # every piece tracked, so the ack waits for all
        first, *rest = sink.held
        first.release()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.receive(), 0.2)
        for token in rest:
            token.release()
        assert await client.receive() == {"ack": "big"}
        client.close()
    assert sink.messages() == logs


async def test_before_the_handshake_nothing_is_decoded_and_a_silent_client_times_out(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, shared_key="k", handshake_timeout="300ms")
    async with running(plugin, ctx):
        port = plugin.listeners.port()
        silent = await Client.connect(port)
        assert (await silent.receive())[0] == "HELO"
        started = time.monotonic()
        assert await silent.closed_by_server()
        assert time.monotonic() - started < 3
        # Event data instead of a PING: at most HANDSHAKE_MAX_BYTES are read, none of it becomes events.
        pushy = await send_raw(port, msgpack.packb(["t", entries(*["x" * 100] * 2000)]))
        assert await pushy.closed_by_server()
        ok = await Client.connect(port)
        assert (await handshake(ok, "k"))[1] is True
        for c in (silent, pushy, ok):
            c.close()
    assert plugin.events == 0
    assert plugin.handshake_timeouts == 1
    assert plugin.auth_failures == 1


async def test_a_thousand_idle_sockets_do_not_lock_out_fluent_logger(tmp_path: Path) -> None:
    from fluent import sender

    sink = Sink()
    plugin, ctx = make(tmp_path, sink)  # default max_connections: 1000
    async with running(plugin, ctx):
        port = plugin.listeners.port()
        server = plugin.listeners.server
        assert server is not None
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(1000)]
        await wait_for(lambda: len(server.connections) == 1000, timeout=20)
        await asyncio.sleep(EVICT_MIN_IDLE + 0.1)  # not a wait: the sockets must have been idle that long

        def log_one() -> bool:
            logger = sender.FluentSender("app", host="127.0.0.1", port=port)
            try:
                return bool(logger.emit("real", {"log": "a real client"}))
            finally:
                logger.close()

        assert await asyncio.to_thread(log_one)
        await wait_for(lambda: sink.messages() == ["a real client"], timeout=10)
        assert server.evicted >= 1
        for _, w in idle:
            w.close()


async def test_events_right_behind_the_ping_are_kept(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, shared_key="k")
    async with running(plugin, ctx):
        client = await Client.connect(plugin.listeners.port())
        nonce = (await client.receive())[1]["nonce"]
        logs = [f"behind {i} " + "z" * 100 for i in range(2000)]  # ~250 KB, past what the handshake decodes
        await client.send(
            ["PING", "client-host", "salt", sha512("salt", "client-host", nonce, "k"), "", ""],
            ["t", entries(*logs), {"chunk": "after-ping"}],
        )
        assert (await client.receive())[:2] == ["PONG", True]
        assert await client.receive() == {"ack": "after-ping"}
        client.close()
    assert sink.messages() == logs
