"""The stream server shared by the receiving inputs: error isolation, stopping, and uvloop."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import uvloop

from collector.testing import wait_for
from collector_plugins.common.listening.addresses import Address, bind, parse_address, release
from collector_plugins.common.listening.stream_server import (
    DEFAULT_HIGH_WATER,
    EVICT_MIN_IDLE,
    KEEPALIVE_IDLE,
    MAX_READ,
    Connection,
    StreamServer,
    format_peer,
)
from collector_plugins.inputs.socket.input import SocketInput, SocketInputConfig
from tests.descriptors import left_open_by_stop
from tests.plugins.receiver_support import Sink, make_context, running

log = logging.getLogger("test.stream_server")


async def test_a_failing_handler_closes_only_its_connection(caplog: pytest.LogCaptureFixture) -> None:
    received: list[bytes] = []

    async def handler(conn: Connection) -> None:
        while data := await conn.read():
            if b"boom" in data:
                raise ValueError("malformed frame")
            received.append(data)

    address = Address("tcp", "127.0.0.1", 0)
    sock = bind(address)
    server = StreamServer(handler, log, "srv", max_connections=10)
    await server.start([sock])
    port = sock.getsockname()[1]
    _, good = await asyncio.open_connection("127.0.0.1", port)
    bad_reader, bad = await asyncio.open_connection("127.0.0.1", port)
    bad.write(b"boom\n")
    assert await asyncio.wait_for(bad_reader.read(), 5) == b""  # the bad connection is closed
    good.write(b"fine\n")
    await good.drain()
    await wait_for(lambda: received == [b"fine\n"])
    assert server.closed_on_error == 1
    assert len(server.connections) == 1
    assert any("malformed frame" in str(getattr(r, "fields", {})) for r in caplog.records)
    good.close()
    bad.close()
    await server.stop(1)
    server.close()
    release(address, sock)


async def test_stop_lets_handlers_drain_then_close_writes_still_work() -> None:
    order: list[str] = []

    async def handler(conn: Connection) -> None:
        while data := await conn.read():
            order.append(data.decode())
        order.append("end")
        conn.write(b"bye\n")  # written after reading ended, before close()

    address = Address("tcp", "127.0.0.1", 0)
    sock = bind(address)
    server = StreamServer(handler, log, "srv", max_connections=10)
    await server.start([sock])
    reader, writer = await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
    writer.write(b"queued")
    await writer.drain()
    await wait_for(lambda: order == ["queued"])
    assert await server.stop(2) == 0
    assert order == ["queued", "end"]
    assert await asyncio.wait_for(reader.read(), 5) == b"bye\n"
    server.close()
    with pytest.raises(OSError):  # no longer accepting
        await asyncio.open_connection("127.0.0.1", sock.getsockname()[1])
    writer.close()
    release(address, sock)


def test_format_peer() -> None:
    assert format_peer(("127.0.0.1", 5)) == "127.0.0.1:5"
    assert format_peer(("::1", 5, 0, 0)) == "[::1]:5"
    assert format_peer("") == "unix"
    assert format_peer(b"/run/x.sock") == "unix:/run/x.sock"


def test_parse_address_forms() -> None:
    assert parse_address("tcp://[::1]:80", "udp") == Address("tcp", "::1", 80)
    assert str(parse_address("[::1]:80", "udp")) == "udp://[::1]:80"
    assert parse_address("unixgram:///dev/log", "tcp").path == "/dev/log"
    with pytest.raises(ValueError, match="107 bytes"):
        parse_address("unix:///" + "x" * 200, "tcp")
    with pytest.raises(ValueError, match="unsupported"):
        parse_address("unixgram:///x", "tcp", allowed=("tcp", "unix"))


def test_every_transport_on_uvloop(tmp_path: Path) -> None:
    """The collector runs on uvloop: TCP, UDP, unix and unixgram listeners work there too."""

    async def main() -> list[str]:
        sink = Sink()
        listens = {
            "tcp": "tcp://127.0.0.1:0",
            "udp": "udp://127.0.0.1:0",
            "unix": f"unix://{tmp_path}/s.sock",
            "unixgram": f"unixgram://{tmp_path}/d.sock",
        }
        for scheme, listen in listens.items():
            ctx = make_context(tmp_path, sink, name=scheme)
            plugin = SocketInput(SocketInputConfig(type="socket", listen=listen), ctx)
            async with running(plugin, ctx):
                where = plugin.listeners.sockets[0].getsockname()
                kind = socket.SOCK_STREAM if scheme in ("tcp", "unix") else socket.SOCK_DGRAM
                family = socket.AF_INET if scheme in ("tcp", "udp") else socket.AF_UNIX
                with socket.socket(family, kind) as client:
                    if kind == socket.SOCK_STREAM:
                        client.connect(where)
                        client.sendall(f"via {scheme}\n".encode())
                    else:
                        client.sendto(f"via {scheme}\n".encode(), where)
                    expected = f"via {scheme}"
                    await wait_for(lambda expected=expected: expected in sink.messages())
        return sink.messages()

    assert uvloop.run(main()) == ["via tcp", "via udp", "via unix", "via unixgram"]


# -- the memory budget, idle connections, max_connections (issue 13) ---------------------------------------


async def serve(handler: Any, **options: Any) -> tuple[StreamServer, int, socket.socket, Address]:
    address = Address("tcp", "127.0.0.1", 0)
    sock = bind(address)
    server = StreamServer(handler, log, "srv", **{"max_connections": 100, **options})
    await server.start([sock])
    return server, sock.getsockname()[1], sock, address


async def shut(server: StreamServer, sock: socket.socket, address: Address) -> None:
    await server.stop(2)
    server.close()
    release(address, sock)


async def test_a_full_downstream_stops_reading_every_socket_within_the_budget_and_loses_nothing() -> None:
    """20 senders, a downstream that takes nothing: what the connections hold stays within max_in_flight_bytes."""
    downstream = asyncio.Event()
    received: list[int] = []

    async def handler(conn: Connection) -> None:
        while data := await conn.read():
            conn.hold(len(data) * 4)  # what the decoded records would cost
            n = len(data)
            del data
            await downstream.wait()
            received.append(n)

    budget = 1024 * 1024
    server, port, sock, address = await serve(handler, max_in_flight_bytes=budget)
    payload = b"x" * (4 * 1024 * 1024)
    writers = [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in range(20)]
    for w in writers:
        w.write(payload)
    # The senders block: their data waits in the kernel, not in the collector.
    await wait_for(lambda: server.paused_for_memory > 0 and all(c._paused for c in server.connections))
    await asyncio.sleep(0.2)  # not a wait: nothing more may be read while paused
    # Past the budget by at most one read's decoded size (a handler is admitted below the limit).
    assert server.peak_in_flight <= budget + 4 * MAX_READ
    downstream.set()
    for w in writers:
        await w.drain()
        w.close()
    await wait_for(lambda: sum(received) == 20 * len(payload), timeout=20)
    await wait_for(lambda: not server.connections)
    assert server.in_flight_bytes == 0  # every connection's share was given back
    await shut(server, sock, address)


async def test_partial_frames_cannot_deadlock_a_full_budget(tmp_path: Path) -> None:
    """Each connection holds part of a line larger than its share of the budget; one at a time may finish it."""
    sink = Sink()
    ctx = make_context(tmp_path, sink)
    config = SocketInputConfig(
        type="socket", listen="tcp://127.0.0.1:0", max_in_flight_bytes="1MiB", max_line_bytes="1MiB"
    )
    plugin = SocketInput(config, ctx)
    async with running(plugin, ctx):
        port = plugin.listeners.port()
        writers = [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in range(6)]
        for i, w in enumerate(writers):
            w.write(f"line {i} ".encode() + b"y" * 90_000)  # no newline yet
        server = plugin.listeners.server
        assert server is not None
        # Partial lines fill the budget (the received quarter of it) or every one of them is in.
        await wait_for(lambda: server._full or server.received_bytes >= 6 * 90_007)
        for w in writers:
            w.write(b"y" * 90_000 + b"\n")
        for w in writers:
            await w.drain()
            w.close()
        await wait_for(lambda: len(sink.records) == 6, timeout=10)
    assert sorted(m[:7] for m in sink.messages()) == [f"line {i} " for i in range(6)]
    assert all(len(m) == 7 + 180_000 for m in sink.messages())


async def test_idle_connections_are_closed_busy_ones_are_not() -> None:
    async def handler(conn: Connection) -> None:
        conn.busy = lambda: conn.peer.endswith(busy_port)
        while await conn.read():
            pass

    busy_port = ""
    server, port, sock, address = await serve(handler, idle_timeout=0.3)
    idle_reader, idle = await asyncio.open_connection("127.0.0.1", port)
    _, busy = await asyncio.open_connection("127.0.0.1", port)
    busy_port = f":{busy.get_extra_info('sockname')[1]}"
    _, talk = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    while time.monotonic() - started < 1.0:  # keeps sending: never idle
        talk.write(b"x")
        await talk.drain()
        await asyncio.sleep(0.05)  # not a wait: a client that talks every 50 ms
    assert await asyncio.wait_for(idle_reader.read(), 5) == b""
    assert server.closed_idle == 1
    assert len(server.connections) == 2  # the busy one and the talking one
    for w in (idle, busy, talk):
        w.close()
    await shut(server, sock, address)


async def test_at_max_connections_a_new_client_takes_the_place_of_the_idlest() -> None:
    got: list[bytes] = []

    async def handler(conn: Connection) -> None:
        while data := await conn.read():
            got.append(data)

    server, port, sock, address = await serve(handler, max_connections=3, idle_timeout=None)
    idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    await wait_for(lambda: len(server.connections) == 3)
    # Too early: nobody has been idle for EVICT_MIN_IDLE yet, so a newcomer is refused.
    early_reader, early = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(early_reader.read(), 5) == b""
    assert server.refused == 1
    await asyncio.sleep(EVICT_MIN_IDLE + 0.1)  # not a wait: the connections must have been idle that long
    _, real = await asyncio.open_connection("127.0.0.1", port)
    real.write(b"hello")
    await real.drain()
    await wait_for(lambda: got == [b"hello"])
    assert server.evicted == 1
    assert await asyncio.wait_for(idle[0][0].read(), 5) == b""  # the first idle one made room
    for _, w in [*idle, (None, early), (None, real)]:
        w.close()
    await shut(server, sock, address)


def test_connections_accepted_while_the_budget_is_full_do_not_read_on_uvloop() -> None:
    """uvloop starts reading after `connection_made`, even if the protocol paused there: the pause must hold."""

    async def main() -> tuple[int, int, int]:
        downstream = asyncio.Event()
        received: list[int] = []

        async def handler(conn: Connection) -> None:
            while data := await conn.read():
                n = len(data)
                del data
                await downstream.wait()
                received.append(n)

        budget = 1024 * 1024
        server, port, sock, address = await serve(handler, max_in_flight_bytes=budget)
        payload = b"x" * (8 * 1024 * 1024)
        early = [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in range(4)]
        for w in early:
            w.write(payload)
        await wait_for(lambda: server._full)
        late = [(await asyncio.open_connection("127.0.0.1", port))[1] for _ in range(8)]  # accepted while full
        for w in late:
            w.write(payload)
        await wait_for(lambda: len(server.connections) == 12)
        await asyncio.sleep(0.5)  # not a wait: were they reading, megabytes would pile up meanwhile
        peak, most = server.peak_in_flight, max(c._buffered for c in server.connections)
        downstream.set()
        for w in early + late:
            await w.drain()
            w.close()
        await wait_for(lambda: sum(received) == 12 * len(payload), timeout=30)
        await shut(server, sock, address)
        return peak, most, budget

    peak, most, budget = uvloop.run(main())
    assert peak <= budget + 4 * MAX_READ
    assert most <= DEFAULT_HIGH_WATER + 256 * 1024  # one read of uvloop's past the mark at most


async def test_tcp_connections_get_keepalive_so_vanished_peers_are_found() -> None:
    options: list[tuple[int, int]] = []

    async def handler(conn: Connection) -> None:
        sock = conn.transport.get_extra_info("socket")  # type: ignore[union-attr]
        options.append(
            (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            )
        )
        while await conn.read():
            pass

    server, port, sock, address = await serve(handler)
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    await wait_for(lambda: bool(options))
    assert options == [(1, KEEPALIVE_IDLE)]
    writer.close()
    await shut(server, sock, address)


@pytest.mark.parametrize("turns", range(6))
async def test_stop_returns_once_every_accepted_socket_is_closed(turns: int) -> None:
    # A connection the loop has accepted but not yet handed to the server (its transport is being made) when
    # stop() is called: stop must not return, and the loop must not be closed, with that socket still open.
    async def handler(conn: Connection) -> None:
        while await conn.read():
            pass

    server, port, sock, address = await serve(handler)
    try:
        leftover = await left_open_by_stop(port, lambda: server.stop(2), turns)
        assert leftover == set(), f"accepted sockets still open after stop(): {leftover}"
    finally:
        server.close()
        release(address, sock)
