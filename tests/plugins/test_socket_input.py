"""The `socket` input: TCP, UDP and unix sockets, text and JSON lines, limits, backpressure, stopping."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from collector.api import InputContext
from collector.config import ConfigError, parse_config
from collector.testing import wait_for
from collector_plugins.inputs.socket.input import SocketInput, SocketInputConfig
from tests.plugins.receiver_support import Sink, make_context, running


def make(tmp_path: Path, sink: Sink, **options: Any) -> tuple[SocketInput, InputContext]:
    options.setdefault("listen", "tcp://127.0.0.1:0")
    ctx = make_context(tmp_path, sink)
    return SocketInput(SocketInputConfig(type="socket", **options), ctx), ctx


def port_of(plugin: SocketInput, index: int = 0) -> int:
    return plugin.listeners.port(index)


async def send_tcp(port: int, data: bytes, close: bool = True) -> asyncio.StreamWriter:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    if close:
        writer.close()
        await writer.wait_closed()
    return writer


async def test_tcp_lines_from_many_connections(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        port = port_of(plugin)
        payloads = {n: b"".join(b"conn%d line %d\n" % (n, i) for i in range(500)) for n in range(20)}
        await asyncio.gather(*(send_tcp(port, data) for data in payloads.values()))
        await wait_for(lambda: len(sink.records) == 20 * 500)
    for n in range(20):
        mine = [m for m in sink.messages() if m.startswith(f"conn{n} ")]
        assert mine == [f"conn{n} line {i}" for i in range(500)]  # in order within a connection
    assert all(isinstance(r["timestamp"], float) for r in sink.records)
    assert plugin.counters()["connections_accepted"] == 20
    assert plugin.lines == 10_000


async def test_line_split_across_reads_crlf_and_last_line_without_newline(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        _, writer = await asyncio.open_connection("127.0.0.1", port_of(plugin))
        writer.write(b"first ha")
        await writer.drain()
        server = plugin.listeners.server
        assert server is not None
        await wait_for(lambda: server.received_bytes == 8)  # read, and kept as a partial line
        writer.write("lf\r\ncaf\xc3\xa9 \xff\n\nno newline".encode("latin-1"))
        await writer.drain()
        await wait_for(lambda: len(sink.records) == 3)
        writer.close()
        await wait_for(lambda: len(sink.records) == 4)
    assert sink.messages() == ["first half", "café \ufffd", "", "no newline"]


async def test_json_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, codec="json")
    lines = [
        b'{"message": "a", "level": "info"}',
        b'{"message": "b", "timestamp": 1700000000}',
        b'{"message": "c", "timestamp": 1700000000.5}',
        b'{"message": "d", "timestamp": "yesterday"}',
        b"not json",
        b"[1, 2]",
        b'{"message": "e"}',
    ]
    async with running(plugin, ctx):
        await send_tcp(port_of(plugin), b"\n".join(lines) + b"\n")
        await wait_for(lambda: len(sink.records) == 5)
    records = sink.records
    assert [r["message"] for r in records] == ["a", "b", "c", "d", "e"]
    assert records[0]["level"] == "info"
    assert records[1]["timestamp"] == 1700000000.0 and type(records[1]["timestamp"]) is float
    assert records[2]["timestamp"] == 1700000000.5
    assert records[3]["timestamp_raw"] == "yesterday" and isinstance(records[3]["timestamp"], float)
    assert plugin.invalid_json == 2
    assert sink.losses["invalid_json"] == 2
    assert any("not JSON objects" in r.getMessage() for r in caplog.records)


async def test_long_lines_are_cut_marked_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, max_line_bytes=10)
    async with running(plugin, ctx):
        _, writer = await asyncio.open_connection("127.0.0.1", port_of(plugin))
        writer.write(b"short\n" + b"x" * 25 + b"\n" + b"y" * 8)
        await writer.drain()
        await wait_for(lambda: len(sink.records) == 2)
        writer.write(b"y" * 30)  # the same line keeps growing without a newline
        await writer.drain()
        await wait_for(lambda: len(sink.records) == 3)
        writer.write(b"yyy\nnext\n")
        await writer.drain()
        await wait_for(lambda: len(sink.records) == 4)
        writer.close()
    assert [(r["message"], r.get("truncated")) for r in sink.records] == [
        ("short", None),
        ("x" * 10, True),
        ("y" * 10, True),
        ("next", None),
    ]
    assert plugin.truncated == 2
    assert sink.losses["truncated"] == 2
    assert len([r for r in caplog.records if "truncated" in r.getMessage()]) == 1


async def test_peer_field(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, peer_field="peer")
    async with running(plugin, ctx):
        writer = await send_tcp(port_of(plugin), b"hi\n", close=False)
        local = writer.get_extra_info("sockname")
        await wait_for(lambda: len(sink.records) == 1)
        writer.close()
    assert sink.records[0]["peer"] == f"127.0.0.1:{local[1]}"


async def test_udp_datagrams_with_several_lines(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, listen="udp://127.0.0.1:0", peer_field="from")
    async with running(plugin, ctx):
        port = port_of(plugin)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"one\n", ("127.0.0.1", port))
            client.sendto(b"two\nthree", ("127.0.0.1", port))
            client.sendto(b"four\r\n", ("127.0.0.1", port))
            client.sendto(b"\n", ("127.0.0.1", port))  # an empty datagram line is nothing
            local = client.getsockname()
            await wait_for(lambda: len(sink.records) == 4)
    assert sink.messages() == ["one", "two", "three", "four"]
    assert {r["from"] for r in sink.records} == {f"127.0.0.1:{local[1]}"}


async def test_udp_long_datagram_is_cut_and_full_channel_is_counted(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, listen="udp://127.0.0.1:0", max_line_bytes=16)
    async with running(plugin, ctx):
        port = port_of(plugin)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"z" * 100, ("127.0.0.1", port))
            await wait_for(lambda: len(sink.records) == 1)
            sink.accept_try_emit = False
            client.sendto(b"refused\n", ("127.0.0.1", port))
            await wait_for(lambda: sink.losses["channel_full"] == 1)
    assert sink.records[0] == {"timestamp": sink.records[0]["timestamp"], "message": "z" * 16, "truncated": True}
    assert sink.losses["truncated"] == 1


async def test_one_input_listens_on_tcp_and_udp(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, listen=["tcp://127.0.0.1:0", "udp://127.0.0.1:0"])
    async with running(plugin, ctx):
        await send_tcp(port_of(plugin, 0), b"by tcp\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"by udp\n", ("127.0.0.1", port_of(plugin, 1)))
        await wait_for(lambda: sorted(sink.messages()) == ["by tcp", "by udp"])
    assert set(plugin.counters()) >= {"connections_accepted", "receive_errors"}


async def test_unix_stream_socket_mode_and_cleanup(tmp_path: Path) -> None:
    path = tmp_path / "in.sock"
    path.touch()
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, listen=f"unix://{path}", socket_mode="0620")
    with pytest.raises(OSError, match="not a socket"):
        await plugin.start()  # a regular file is never replaced
    path.unlink()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # left behind by an earlier run: replaced
    stale.close()
    async with running(plugin, ctx):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o620
        _, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"over unix\n")
        await writer.drain()
        await wait_for(lambda: len(sink.records) == 1)
        writer.close()
    assert sink.messages() == ["over unix"]
    assert not path.exists()


async def test_unix_datagram_socket(tmp_path: Path) -> None:
    path = tmp_path / "run" / "collector" / "dgram.sock"  # the directory is created
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, listen=f"unixgram://{path}")
    async with running(plugin, ctx):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
            client.sendto(b"datagram one", str(path))
            client.sendto(b"datagram two\n", str(path))
            await wait_for(lambda: len(sink.records) == 2)
    assert sink.messages() == ["datagram one", "datagram two"]


async def test_backpressure_blocks_the_sender_without_loss(tmp_path: Path) -> None:
    sink = Sink()
    sink.open.clear()  # the downstream is full
    budget = 4 << 20
    plugin, ctx = make(tmp_path, sink, max_in_flight_bytes=budget)
    # More than the kernel can take in on loopback (the receive buffer autotunes up to tcp_rmem's maximum; the
    # sender's buffer is kept small here) plus the input's own in-flight budget: a sender held back must stop.
    rmem_max = int(Path("/proc/sys/net/ipv4/tcp_rmem").read_text().split()[2])
    total = (rmem_max + budget + (8 << 20)) // 208
    payload = b"".join(b"%07d %s\n" % (i, b"p" * 200) for i in range(total))
    sent = [0]

    def writer(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 18)
            client.settimeout(20)
            view = memoryview(payload)
            while view:
                n = client.send(view[: 1 << 16])
                sent[0] += n
                view = view[n:]

    async with running(plugin, ctx):
        thread = threading.Thread(target=writer, args=(port_of(plugin),), daemon=True)
        thread.start()
        await wait_for(lambda: sink.waiting == 1)
        last = [-1]

        def sender_stuck() -> bool:  # no progress over one poll interval: the kernel's buffers are full
            before, last[0] = last[0], sent[0]
            return before == sent[0]

        server = plugin.listeners.server
        assert server is not None
        await wait_for(lambda: bool(server.connections) and all(c._paused for c in server.connections))
        # Kernel buffers still fill (and grow) for a while after the pause: no progress over a quarter second.
        await wait_for(sender_stuck, timeout=10, interval=0.25)
        stuck_at = sent[0]
        await asyncio.sleep(0.2)  # not a wait: the sender must make no progress at all meanwhile
        # The connection's reading paused: the sender is stuck with the payload partly unsent, and what the
        # input holds stayed within its budget (the rest waits in the kernel's buffers).
        assert sent[0] == stuck_at < len(payload)
        assert server.peak_in_flight <= budget
        assert thread.is_alive()
        sink.open.set()
        await wait_for(lambda: len(sink.records) == total, timeout=30)
        thread.join(5)
    assert [int(m[:7]) for m in sink.messages()] == list(range(total))


async def test_too_many_connections_are_refused_and_counted(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, max_connections=2)
    async with running(plugin, ctx):
        port = port_of(plugin)
        kept = [await send_tcp(port, b"kept\n", close=False) for _ in range(2)]
        await wait_for(lambda: len(sink.records) == 2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the input
        writer.close()
        assert plugin.counters()["connections_refused"] == 1
        for w in kept:
            w.write(b"still served\n")
        await wait_for(lambda: len(sink.records) == 4)
        for w in kept:
            w.close()


async def test_stop_hands_on_what_was_received_and_returns(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    await plugin.start()
    task = asyncio.ensure_future(plugin.run(ctx))
    _, writer = await asyncio.open_connection("127.0.0.1", port_of(plugin))
    writer.write(b"complete\npartial")
    await writer.drain()
    await wait_for(lambda: len(sink.records) == 1)
    ctx.stopping.set()
    await asyncio.wait_for(task, 5)  # the open connection does not hold the stop
    await plugin.stop()
    assert sink.messages() == ["complete", "partial"]
    assert plugin.listeners.sockets == []
    writer.close()


async def test_stop_cancels_a_connection_stuck_downstream_and_counts_its_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("collector_plugins.common.listening.listeners.STOP_TIMEOUT", 0.2)
    sink = Sink()
    sink.open.clear()
    plugin, ctx = make(tmp_path, sink)
    await plugin.start()
    task = asyncio.ensure_future(plugin.run(ctx))
    writer = await send_tcp(port_of(plugin), b"a\nb\nc\n", close=False)
    await wait_for(lambda: sink.waiting == 1)
    ctx.stopping.set()
    await asyncio.wait_for(task, 5)
    await plugin.stop()
    assert sink.losses["stopped"] == 3
    writer.close()


async def test_port_in_use_fails_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        plugin, _ = make(tmp_path, Sink(), listen=f"127.0.0.1:{taken.getsockname()[1]}")
        with pytest.raises(OSError):
            await plugin.start()


def test_default_scheme_and_host() -> None:
    config = SocketInputConfig(type="socket", listen=":5170")
    plugin = SocketInput(config, make_context(Path("/tmp"), Sink()))
    assert [str(a) for a in plugin.listeners.addresses] == ["tcp://127.0.0.1:5170"]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"listen": "http://127.0.0.1:80"}, "unsupported scheme"),
        ({"listen": "unix://relative.sock"}, "absolute path"),
        ({"listen": "127.0.0.1"}, "host:port"),
        ({"listen": "tcp://127.0.0.1:99999"}, "out of range"),
        ({"listen": ":1", "max_line_bytes": 0}, "max_line_bytes"),
        ({"listen": ":1", "socket_mode": "rw"}, "octal"),
        ({"listen": ":1", "codec": "xml"}, "codec"),
        ({"listen": ":1", "max_connections": 0}, "max_connections"),
        ({"listen": ["tcp://127.0.0.1:1", "127.0.0.1:1"]}, "listed twice"),
        ({"listen": []}, "at least one address"),
    ],
)
def test_config_errors(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        SocketInputConfig(type="socket", **options)


async def test_json_records_survive_the_socket_output_encoding(tmp_path: Path) -> None:
    # What our socket output writes with codec json, this input reads back field for field.
    from collector_plugins.common.record_encoding import encode_json

    sink = Sink()
    plugin, ctx = make(tmp_path, sink, codec="json")
    records = [{"timestamp": 1.5, "message": "m", "n": i, "nested": {"k": [1, 2]}} for i in range(3)]
    async with running(plugin, ctx):
        await send_tcp(port_of(plugin), encode_json(records))
        await wait_for(lambda: len(sink.records) == 3)
    assert sink.records == records
    assert orjson.loads(encode_json(records[:1])) == records[0]


def test_stream_connections_count_in_the_memory_budget() -> None:
    """budgets.memory bounds memory buffers and what receivers' connections may hold (max_in_flight_bytes)."""
    body = """
inputs:
  tcp: {type: socket, listen: "tcp://127.0.0.1:5170", max_in_flight_bytes: 64MiB}
  udp_only: {type: socket, listen: "udp://127.0.0.1:5170", max_in_flight_bytes: 1GiB}
outputs:
  out: {type: blackhole, inputs: [tcp, udp_only], buffer: {max_bytes: 32MiB}}
"""
    parse_config(body + "budgets: {memory: 96MiB}\n", "c.yaml")  # 64 + 32; a UDP-only input holds no connections
    with pytest.raises(ConfigError, match=r"receivers' connections \(max_in_flight_bytes\) may hold 100663297"):
        parse_config(body.replace("64MiB", "67108865") + "budgets: {memory: 96MiB}\n", "c.yaml")
