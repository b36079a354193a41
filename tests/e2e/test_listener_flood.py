"""Issue 13: 400 connections sending as fast as they can keep the collector's memory bounded, and lose nothing.

A `collector run` process receives on a `forward` or `syslog` TCP listener with default settings and writes
to a `file` output; 400 client connections send prebuilt blocks of messages for `FLOOD_SECONDS`, then close.
Every message a client wrote must come out of the output, and the collector's peak RSS (VmHWM) must stay
within `RSS_LIMIT`. Without the shared per-input budget each connection held megabytes of decoded records
while it waited for room downstream (1.4-1.6 GB with 200 connections).
"""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import msgpack
import pytest

from collector.testing import free_port, wait_for_sync
from tests.e2e.conftest import Collector

pytestmark = pytest.mark.slow

CONNECTIONS = int(__import__("os").environ.get("FLOOD_CONNECTIONS", "400"))
FLOOD_SECONDS = 20.0
RSS_LIMIT = 300 * 1024 * 1024
BLOCK_MESSAGES = 200


def forward_block(connection: int) -> bytes:
    # Message mode, as fluent-logger sends it: [tag, time, record].
    now = int(time.time())
    return b"".join(
        msgpack.packb(["flood.app", now, {"log": f"connection {connection} line {i} " + "x" * 60, "source": "stdout"}])
        for i in range(BLOCK_MESSAGES)
    )


def syslog_block(connection: int) -> bytes:
    head = f"<34>1 2026-12-06T02:00:00.000Z host{connection} app 123 ID47 - connection {connection} line"
    return b"".join(f"{head} {i} {'x' * 60}\n".encode() for i in range(BLOCK_MESSAGES))


async def flood(port: int, make_block: object, seconds: float) -> int:
    """Open CONNECTIONS connections, write blocks as fast as the collector takes them; messages written."""
    deadline = time.monotonic() + seconds
    sent = [0] * CONNECTIONS

    async def one(index: int) -> None:
        block = make_block(index)  # type: ignore[operator]
        for attempt in range(50):  # the listen backlog may overflow while 400 connect at once
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # A small send buffer, so that what counts as sent is close to what the collector has taken
            # (the kernel would otherwise hold minutes of data for 400 connections and the drain takes long).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
                _, writer = await asyncio.open_connection(sock=sock)
                break
            except OSError:
                sock.close()
                await asyncio.sleep(0.05 * (attempt + 1))
        else:
            raise AssertionError(f"connection {index} could not connect")
        while time.monotonic() < deadline:
            writer.write(block)
            sent[index] += BLOCK_MESSAGES
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(one(i) for i in range(CONNECTIONS)))
    return sum(sent)


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["forward", "syslog"])
def test_400_fast_connections_stay_within_the_memory_bound_and_lose_nothing(
    collector: Collector, tmp_path: Path, kind: str
) -> None:
    port = free_port()
    out = tmp_path / "out.log"
    listen = f"tcp://127.0.0.1:{port}"
    collector.write_config(
        f"inputs:\n  flood: {{type: {kind}, listen: '{listen}'}}\n"
        f"outputs:\n  sink: {{type: file, inputs: [flood], path: '{out}', codec: text, max_bytes: null}}\n"
    )
    collector.start()
    assert collector.proc is not None
    make_block = forward_block if kind == "forward" else syslog_block
    sent = asyncio.run(flood(port, make_block, FLOOD_SECONDS))
    wait_for_sync(lambda: count_lines(out) >= sent, timeout=120, interval=0.5)
    rss = peak_rss(collector.proc.pid)
    delivered = count_lines(out)
    status = collector.component("flood")
    print(
        f"{kind}: {sent} messages sent over {CONNECTIONS} connections in {FLOOD_SECONDS:.0f}s, "
        f"{delivered} delivered, peak RSS {rss / 2**20:.1f} MiB, input counters {status.get('extra')}"
    )
    assert delivered == sent
    assert rss <= RSS_LIMIT, f"peak RSS {rss / 2**20:.1f} MiB"
