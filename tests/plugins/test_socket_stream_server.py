"""The stream server shared by the receiving inputs: error isolation, stopping, and uvloop."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest
import uvloop

from collector.testing import wait_for
from collector_plugins.common.listen import Address, bind, parse_address, release
from collector_plugins.common.stream_server import Connection, StreamServer, format_peer
from collector_plugins.inputs.socket import SocketInput, SocketInputConfig
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
