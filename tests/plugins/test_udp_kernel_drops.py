"""Datagrams the kernel drops are counted as `kernel_drops`, in every UDP input, equal to the kernel's own figure.

Each test floods a listener whose receive buffer is tiny while the event loop
is busy (the test sends synchronously, so the loop cannot read meanwhile): the
kernel drops most of the flood. The ledger must then hold exactly what was
sent minus what the input received, and that must be the socket's `drops`
column in /proc/net/udp(6), read here independently of the code under test.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest
import statsd
import uvloop

from collector.api import Input
from collector.testing import wait_for
from collector_plugins.common.listening.datagram_reader import DatagramReader
from collector_plugins.common.listening.kernel_drops import KernelDrops, counter_delta
from collector_plugins.inputs.emf.input import EmfConfig, EmfInput
from collector_plugins.inputs.socket.input import SocketInput, SocketInputConfig
from collector_plugins.inputs.statsd.input import StatsdConfig, StatsdInput
from collector_plugins.inputs.syslog.input import Syslog, SyslogConfig
from tests.plugins.receiver_support import Sink, make_context, running

FLOOD = 3000
TINY_BUFFER = 4096  # the kernel doubles it: a handful of small datagrams fit


def proc_drops(sock: socket.socket) -> int:
    """The socket's `drops` column in /proc/net/udp or /proc/net/udp6 (found by inode)."""
    inode = str(os.fstat(sock.fileno()).st_ino)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                if fields[9] == inode:
                    return int(fields[12])
    raise AssertionError(f"socket inode {inode} not in /proc/net/udp*")


def tiny_buffer(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TINY_BUFFER)


pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/udp"), reason="Linux /proc/net/udp needed")


# ----------------------------------------------------------------- the counter


@pytest.mark.parametrize("use_meminfo", [True, False], ids=["so_meminfo", "proc"])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_counter_equals_the_kernels_figure(host: str, use_meminfo: bool) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    receiver = socket.socket(family, socket.SOCK_DGRAM)
    sender = socket.socket(family, socket.SOCK_DGRAM)
    try:
        tiny_buffer(receiver)
        receiver.bind((host, 0))
        drops = KernelDrops(receiver, use_meminfo=use_meminfo)
        assert drops.method == ("so_meminfo" if use_meminfo else "proc")
        assert drops.delta() == 0
        for i in range(500):
            sender.sendto(b"%d" % i, receiver.getsockname()[:2])
        received = 0
        receiver.setblocking(False)
        while True:
            try:
                receiver.recv(100)
            except BlockingIOError:
                break
            received += 1
        dropped = drops.delta()
        assert dropped > 0
        assert dropped == 500 - received == proc_drops(receiver)
        assert drops.delta() == 0  # nothing new since
        assert drops.total == dropped
    finally:
        receiver.close()
        sender.close()
    assert drops.read() is None and drops.delta() == 0  # a closed socket: nothing to read, no error


def test_the_counter_wraps_at_32_bits(tmp_path: Path) -> None:
    assert counter_delta(7, 10) == 3
    assert counter_delta(2**32 - 5, 3) == 8
    # Through the /proc reader, with a fake table holding the socket's inode.
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    inode = os.fstat(sock.fileno()).st_ino
    table = tmp_path / "udp"
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref"
    queues = "07 00000000:00000000 00:00000000 00000000  1000 0"

    def write(drops: int) -> None:
        other = f"  2: 0100007F:1F91 00000000:0000 {queues} 1 2 0 99\n"
        line = f"  1: 0100007F:1F90 00000000:0000 {queues} {inode} 2 0 {drops}\n"
        table.write_text(header + " pointer drops\n" + other + line)

    write(2**32 - 6)
    drops = KernelDrops(sock, proc_net=str(tmp_path), use_meminfo=False)
    assert drops.method == "proc"
    write(4)
    assert drops.delta() == 10
    write(4)
    assert drops.delta() == 0
    sock.close()


def test_no_counter_where_the_kernel_has_none(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    drops = KernelDrops(sock, proc_net=str(tmp_path), use_meminfo=False)  # an empty "/proc/net"
    assert drops.method == "none" and drops.read() is None and drops.delta() == 0
    sock.close()


# ----------------------------------------------------------------- every UDP input


def _statsd(tmp_path: Path, sink: Sink, listen: str) -> StatsdInput:
    config = StatsdConfig.model_validate({"type": "statsd", "listen": [listen], "interval": "60s"})
    return StatsdInput(config, make_context(tmp_path, sink))


def _socket(tmp_path: Path, sink: Sink, listen: str) -> SocketInput:
    return SocketInput(SocketInputConfig(type="socket", listen=listen), make_context(tmp_path, sink))


def _syslog(tmp_path: Path, sink: Sink, listen: str) -> Syslog:
    return Syslog(SyslogConfig(type="syslog", listen=listen), make_context(tmp_path, sink))


def _emf(tmp_path: Path, sink: Sink, listen: str) -> EmfInput:
    return EmfInput(EmfConfig(type="emf", listen=[listen]), make_context(tmp_path, sink))


EMF_DOC = orjson.dumps(
    {
        "_aws": {
            "Timestamp": 1_700_000_000_000,
            "CloudWatchMetrics": [{"Namespace": "app", "Dimensions": [["svc"]], "Metrics": [{"Name": "lat"}]}],
        },
        "svc": "api",
        "lat": 1,
    }
)
INPUTS: dict[str, tuple[Any, bytes, str]] = {
    # name: (factory, one datagram, the input's counter of what it received)
    "socket": (_socket, b"a line", "lines"),
    "syslog": (_syslog, b"<13>Oct 11 22:14:15 host app: hello", "messages"),
    "emf": (_emf, EMF_DOC + b"\n", "datagrams"),
    "statsd": (_statsd, b"raw.hits:1|c", "datagrams"),
}


async def flood_and_check(plugin: Input, sink: Sink, datagram: bytes, received: str, family: int, host: str) -> None:
    listeners = plugin.listeners  # type: ignore[attr-defined]
    sock = listeners.sockets[0]
    tiny_buffer(sock)
    sender = socket.socket(family, socket.SOCK_DGRAM)
    address = (host, listeners.port(0))
    for _ in range(FLOOD):  # synchronously: the loop cannot read meanwhile
        sender.sendto(datagram, address)
    sender.close()

    def accounted() -> bool:
        return plugin.counters()[received] + sink.losses["kernel_drops"] == FLOOD

    await wait_for(accounted, timeout=5)
    assert sink.losses["kernel_drops"] > FLOOD // 2
    assert sink.losses["kernel_drops"] == proc_drops(sock)
    assert plugin.counters()["kernel_drops"] == sink.losses["kernel_drops"]


@pytest.mark.parametrize("name", INPUTS)
async def test_every_udp_input_counts_kernel_drops(tmp_path: Path, name: str, caplog: pytest.LogCaptureFixture) -> None:
    factory, datagram, received = INPUTS[name]
    sink = Sink()
    plugin = factory(tmp_path, sink, "udp://127.0.0.1:0")
    with caplog.at_level(logging.ERROR):
        async with running(plugin, plugin.ctx):  # type: ignore[attr-defined]
            await flood_and_check(plugin, sink, datagram, received, socket.AF_INET, "127.0.0.1")
    errors = [r for r in caplog.records if "dropped by the kernel" in r.getMessage()]
    assert len(errors) == 1  # once a minute at most, however many polls found drops
    assert errors[0].fields["reason"] == "kernel_drops"  # type: ignore[attr-defined]
    if name == "statsd":  # what was received is what was aggregated: nothing lost beyond the ledger
        (point,) = sink.records
        assert point.value == FLOOD - sink.losses["kernel_drops"]
    else:
        assert len(sink.records) == FLOOD - sink.losses["kernel_drops"]


async def test_real_statsd_client_flood(tmp_path: Path) -> None:
    sink = Sink()
    plugin = _statsd(tmp_path, sink, "udp://127.0.0.1:0")
    async with running(plugin, plugin.ctx):
        tiny_buffer(plugin.listeners.sockets[0])
        client = statsd.StatsClient("127.0.0.1", plugin.ports()[0], prefix="app")
        for _ in range(FLOOD):
            client.incr("requests")
        client.close()
        await wait_for(lambda: plugin.datagrams + sink.losses["kernel_drops"] == FLOOD, timeout=5)
        assert sink.losses["kernel_drops"] == proc_drops(plugin.listeners.sockets[0]) > 0
    (point,) = sink.records
    assert point.name == "app.requests"
    assert point.value + sink.losses["kernel_drops"] == FLOOD


async def test_ipv6_listener_counts_kernel_drops(tmp_path: Path) -> None:
    sink = Sink()
    plugin = _socket(tmp_path, sink, "udp://[::1]:0")
    try:
        await plugin.start()
    except OSError:
        pytest.skip("no IPv6 loopback")
    await plugin.stop()
    plugin = _socket(tmp_path, sink, "udp://[::1]:0")
    async with running(plugin, plugin.ctx):
        await flood_and_check(plugin, sink, b"v6 line", "lines", socket.AF_INET6, "::1")


def test_on_uvloop_too(tmp_path: Path) -> None:
    """The collector runs on uvloop: the reader's timer and the counter work there as well."""

    async def main() -> tuple[int, int]:
        sink = Sink()
        plugin = _socket(tmp_path, sink, "udp://127.0.0.1:0")
        async with running(plugin, plugin.ctx):
            await flood_and_check(plugin, sink, b"line", "lines", socket.AF_INET, "127.0.0.1")
        return len(sink.records), sink.losses["kernel_drops"]

    delivered, dropped = uvloop.run(main())
    assert delivered + dropped == FLOOD and dropped > 0


async def test_datagrams_in_the_buffer_at_stop_are_read_not_lost() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    got: list[bytes] = []
    losses: dict[str, int] = {}
    reader = DatagramReader(
        receiver,
        lambda datagrams: got.extend(data for data, _ in datagrams),
        1000,
        logging.getLogger("test.datagram"),
        "d",
        burst=8,
        loss=lambda reason, n: losses.__setitem__(reason, losses.get(reason, 0) + n),
    )
    reader.start()
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(50):
        sender.sendto(b"m%d" % i, receiver.getsockname())
    sender.close()
    reader.stop()  # before the loop had a chance to read any: stop reads them all, in bursts
    assert got == [b"m%d" % i for i in range(50)]
    assert losses == {}
    receiver.close()
