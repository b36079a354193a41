"""The `socket` output: one write per batch, reconnection through the driver's retries, UDP, unix, and a
round trip through the real runtime into the `socket` input."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from collector.api import HostFacts
from collector.config import parse_config
from collector.events import LOGS, Batch
from collector.registry import load_registry
from collector.runtime import Runtime
from collector.send_result import Outcome, RetryableError
from collector.testing import Capture, component_context, free_port, wait_for
from collector_plugins.outputs.socket.output import SocketOutput, SocketOutputConfig


class LineServer:
    """A TCP or unix listener that records what each connection sent, and can stop reading."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.connections: list[asyncio.StreamWriter] = []
        self.reading = asyncio.Event()
        self.reading.set()
        self.server: asyncio.AbstractServer | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.append(writer)
        try:
            while True:
                await self.reading.wait()
                data = await reader.read(65536)
                if not data:
                    break
                self.received.append(data)
        finally:
            writer.close()

    @property
    def data(self) -> bytes:
        return b"".join(self.received)

    async def start_tcp(self, port: int) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", port, limit=65536)

    async def start_unix(self, path: str) -> None:
        self.server = await asyncio.start_unix_server(self.handle, path)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.connections:
            writer.close()
        if self.server is not None:
            await self.server.wait_closed()


def output(tmp_path: Path, **options: Any) -> SocketOutput:
    return SocketOutput(SocketOutputConfig(type="socket", inputs=["x"], **options), component_context("out", tmp_path))


def batch(*messages: str) -> Batch:
    return Batch(LOGS, [{"timestamp": 1.0, "message": m} for m in messages], sum(map(len, messages)))


async def test_tcp_text_batch_is_one_write(tmp_path: Path) -> None:
    port = free_port()
    server = LineServer()
    await server.start_tcp(port)
    out = output(tmp_path, address=f"tcp://127.0.0.1:{port}", codec="text")
    try:
        assert await out.send(batch("a", "b", "c")) is None
        stream = out._stream
        assert stream is not None and stream.transport is not None
        writes: list[bytes] = []
        real_write = stream.transport.write

        def spy(data: bytes) -> None:
            writes.append(data)
            real_write(data)

        stream.transport.write = spy  # type: ignore[method-assign]
        await out.send(batch(*[f"line {i}" for i in range(1000)]))
        assert len(writes) == 1
        await wait_for(lambda: server.data.count(b"\n") == 1003)
    finally:
        await out.stop()
        await server.close()
    assert server.data.split(b"\n")[:4] == [b"a", b"b", b"c", b"line 0"]
    assert out.counters()["events"] == 1003 and out.connects == 1


async def test_json_codec_lines(tmp_path: Path) -> None:
    port = free_port()
    server = LineServer()
    await server.start_tcp(port)
    out = output(tmp_path, address=f"127.0.0.1:{port}")
    try:
        await out.send(Batch(LOGS, [{"timestamp": 2.0, "message": b"raw", "k": 1}]))
        await wait_for(lambda: server.data.endswith(b"\n"))
    finally:
        await out.stop()
        await server.close()
    assert orjson.loads(server.data) == {"timestamp": 2.0, "message": "raw", "k": 1}


async def test_unreachable_is_retryable_then_connects(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    out = output(tmp_path, address=f"tcp://127.0.0.1:{port}", codec="text")
    for _ in range(3):
        with pytest.raises(RetryableError, match="cannot connect"):
            await out.send(batch("lost?"))
    assert out.connect_failures == 3
    assert len([r for r in caplog.records if "cannot connect" in r.getMessage()]) == 1  # once per interval
    server = LineServer()
    await server.start_tcp(port)
    try:
        await out.send(batch("now"))
        await wait_for(lambda: server.data == b"now\n")
    finally:
        await out.stop()
        await server.close()


async def test_peer_closing_is_noticed_and_the_next_send_reconnects(tmp_path: Path) -> None:
    port = free_port()
    server = LineServer()
    await server.start_tcp(port)
    out = output(tmp_path, address=f"tcp://127.0.0.1:{port}", codec="text")
    try:
        await out.send(batch("one"))
        await wait_for(lambda: server.data == b"one\n")
        server.connections[0].close()  # the receiver drops the connection
        await wait_for(lambda: out._stream is not None and out._stream.lost)
        await out.send(batch("two"))  # noticed before writing: a new connection carries it
        await wait_for(lambda: server.data == b"one\ntwo\n")
    finally:
        await out.stop()
        await server.close()
    assert out.connects == 2 and out.disconnects == 1


async def test_a_peer_that_stops_reading_times_out_as_retryable(tmp_path: Path) -> None:
    port = free_port()
    server = LineServer()
    server.reading.clear()
    await server.start_tcp(port)
    out = output(tmp_path, address=f"tcp://127.0.0.1:{port}", codec="text", write_timeout=0.3)
    big = batch(*["x" * 1000] * 20_000)  # 20 MB: more than the socket buffers hold
    try:
        with pytest.raises(RetryableError, match="timed out"):
            await out.send(big)
        assert out._stream is None and out.disconnects == 1
    finally:
        await out.stop()
        await server.close()


async def test_unix_stream(tmp_path: Path) -> None:
    path = str(tmp_path / "sink.sock")
    server = LineServer()
    await server.start_unix(path)
    out = output(tmp_path, address=f"unix://{path}", codec="text")
    try:
        await out.send(batch("via unix"))
        await wait_for(lambda: server.data == b"via unix\n")
    finally:
        await out.stop()
        await server.close()


async def test_udp_one_datagram_per_record_and_too_large_is_dropped(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        port = receiver.getsockname()[1]
        out = output(tmp_path, address=f"udp://127.0.0.1:{port}", codec="text")
        try:
            result = await out.send(batch("first", "y" * 70_000, "third"))
            assert result is not None and result.per_record == [Outcome.OK, Outcome.DROP, Outcome.OK]
            assert result.record_reasons is not None and "record_too_large" in result.record_reasons[1]
            assert [receiver.recv(100_000) for _ in range(2)] == [b"first\n", b"third\n"]
            await out.write(batch("fourth"))
            assert receiver.recv(100) == b"fourth\n"
        finally:
            await out.stop()
    assert out.events == 3


async def test_round_trip_through_the_runtime_survives_a_receiver_outage(tmp_path: Path) -> None:
    """generator -> socket output (tcp) -> socket input -> capture, with the receiver started late."""
    capture = Capture()
    registry = load_registry()
    registry.add(capture.output)
    port = free_port()
    sender = parse_config(
        f"""
inputs:
  gen: {{type: generator, count: 5000, batch_size: 500, message: "m"}}
outputs:
  ship:
    type: socket
    inputs: [gen]
    address: tcp://127.0.0.1:{port}
    codec: json
    retry: {{initial_backoff: 20ms, max_backoff: 100ms}}
""",
        "sender.yaml",
        registry,
        environ={},
    )
    receiver = parse_config(
        f"""
inputs:
  lines: {{type: socket, listen: "tcp://127.0.0.1:{port}", codec: json}}
outputs:
  got: {{type: capture, inputs: [lines]}}
""",
        "receiver.yaml",
        registry,
        environ={},
    )
    send_side = Runtime(tmp_path / "s", HostFacts("h"))
    receive_side = Runtime(tmp_path / "r", HostFacts("h"))
    await send_side.apply(sender.graph)
    await wait_for(lambda: send_side.stats["ship"].retries >= 2)  # nobody listens yet
    await receive_side.apply(receiver.graph)
    await wait_for(lambda: receive_side.stats["lines"].state == "running")
    await wait_for(lambda: len(capture("got")) == 5000, timeout=10)
    await send_side.shutdown(5)
    await receive_side.shutdown(5)
    assert sorted(r["sequence"] for r in capture("got")) == list(range(5000))
    assert send_side.stats["ship"].sent_events == 5000


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"address": "unixgram:///x"}, "unsupported scheme"),
        ({"address": "tcp://127.0.0.1"}, "host:port"),
        ({"address": ":1", "write_timeout": 0}, "greater than 0"),
        ({"address": ":1", "codec": "msgpack"}, "codec"),
    ],
)
def test_config_errors(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        SocketOutputConfig(type="socket", inputs=["x"], **options)


def test_logging_is_quiet_on_success(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        port = free_port()
        server = LineServer()
        await server.start_tcp(port)
        out = output(tmp_path, address=f"tcp://127.0.0.1:{port}")
        await out.send(batch("ok"))
        await out.stop()
        await server.close()

    asyncio.run(main())
    assert not caplog.records
