"""The `syslog` input against the real util-linux `logger`: TCP, UDP and unix sockets, RFC 3164 and 5424,
newline and octet-counted framing; plus error isolation, limits and backpressure."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from collector.api import InputContext
from collector.testing import wait_for
from collector_plugins.common.listening.addresses import LISTEN_BACKLOG
from collector_plugins.common.listening.stream_server import EVICT_MIN_IDLE
from collector_plugins.inputs.syslog.input import Syslog, SyslogConfig
from tests.plugins.receiver_support import Sink, listen_backlog, make_context, running

pytestmark = pytest.mark.skipif(shutil.which("logger") is None, reason="util-linux logger is not installed")
HOSTNAME = socket.gethostname()


def make(tmp_path: Path, sink: Sink, **options: Any) -> tuple[Syslog, InputContext]:
    options.setdefault("listen", ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"])
    ctx = make_context(tmp_path, sink)
    return Syslog(SyslogConfig(type="syslog", **options), ctx), ctx


async def logger(*args: str, stdin: bytes | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(
        "logger",
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else None,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(stdin), 10)
    assert proc.returncode == 0, err.decode()


def remote(plugin: Syslog, index: int, *args: str) -> list[str]:
    transport = "--tcp" if index == 0 else "--udp"
    return ["--server", "127.0.0.1", "--port", str(plugin.listeners.port(index)), transport, *args]


@pytest.mark.parametrize("octet_count", [False, True], ids=["newline", "octet_counting"])
async def test_logger_rfc5424_over_tcp(tmp_path: Path, octet_count: bool) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    extra = ["--octet-count"] if octet_count else []
    before = time.time()
    async with running(plugin, ctx):
        await logger(
            *remote(plugin, 0, "--rfc5424", *extra),
            "-p",
            "local3.warning",
            "-t",
            "billing",
            "--id=4711",
            "--msgid",
            "INVOICE",
            "--sd-id",
            "order@32473",
            "--sd-param",
            'id="A-17"',
            "--sd-param",
            'note="say \\"hi\\""',
            "invoice sent",
        )
        await wait_for(lambda: len(sink.records) == 1)
    record = sink.records[0]
    assert record["message"] == "invoice sent"
    assert (record["facility"], record["severity"]) == ("local3", "warning")
    assert (record["host"], record["app"], record["procid"], record["msgid"]) == (
        HOSTNAME,
        "billing",
        "4711",
        "INVOICE",
    )
    assert record["structured_data"]["order@32473"] == {"id": "A-17", "note": 'say "hi"'}
    assert "timeQuality" in record["structured_data"]
    assert before - 1 <= record["timestamp"] <= time.time()
    assert "parse_error" not in record


@pytest.mark.parametrize("octet_count", [False, True], ids=["newline", "octet_counting"])
async def test_logger_rfc3164_over_tcp(tmp_path: Path, octet_count: bool) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    extra = ["--octet-count"] if octet_count else []
    async with running(plugin, ctx):
        await logger(*remote(plugin, 0, "--rfc3164", *extra), "-p", "auth.err", "-t", "sshd", "--id=22", "denied")
        await wait_for(lambda: len(sink.records) == 1)
    record = sink.records[0]
    assert record["message"] == "denied"
    assert (record["facility"], record["severity"]) == ("auth", "err")
    assert (record["host"], record["app"], record["procid"]) == (HOSTNAME, "sshd", "22")
    assert abs(record["timestamp"] - time.time()) < 5  # second resolution, local time, this year


@pytest.mark.parametrize("rfc", ["--rfc3164", "--rfc5424"])
async def test_logger_over_udp(tmp_path: Path, rfc: str) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, peer_field="peer")
    async with running(plugin, ctx):
        await logger(*remote(plugin, 1, rfc), "-t", "udpapp", "over udp")
        await wait_for(lambda: len(sink.records) == 1)
    record = sink.records[0]
    assert (record["app"], record["message"], record["facility"]) == ("udpapp", "over udp", "user")
    assert record["peer"].startswith("127.0.0.1:")


async def test_many_lines_from_a_file_over_tcp_arrive_in_order(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    lines = [f"line {i:05d} " + "x" * 150 for i in range(3000)]
    source = tmp_path / "lines.txt"
    source.write_text("\n".join(lines) + "\n")
    async with running(plugin, ctx):
        await logger(*remote(plugin, 0, "--octet-count"), "-t", "bulk", "-f", str(source))
        await wait_for(lambda: len(sink.records) == 3000)
    assert sink.messages() == lines
    assert plugin.counters()["messages"] == 3000


@pytest.mark.parametrize("kind", ["unixgram", "unix"])
async def test_logger_on_a_unix_socket(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "log.sock"
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, listen=f"{kind}://{path}", socket_mode="0666")
    async with running(plugin, ctx):
        await logger("--socket", str(path), "-d" if kind == "unixgram" else "-T", "-t", "local", "--id=5", "hi")
        await logger("--socket", str(path), "-d" if kind == "unixgram" else "-T", "--rfc5424", "-t", "local", "5424")
        await wait_for(lambda: len(sink.records) == 2)
    first, second = sink.records
    assert (first["app"], first["procid"], first["message"]) == ("local", "5", "hi")
    assert "host" not in first  # local senders leave the host out
    assert (second["app"], second["message"], second["host"]) == ("local", "5424", HOSTNAME)
    assert not path.exists()


async def test_lost_framing_closes_only_that_connection(tmp_path: Path) -> None:
    def frame(message: bytes) -> bytes:
        return b"%d %s" % (len(message), message)

    sink = Sink()
    plugin, ctx = make(tmp_path, sink, listen="tcp://127.0.0.1:0")
    async with running(plugin, ctx):
        port = plugin.listeners.port()
        _, good = await asyncio.open_connection("127.0.0.1", port)
        bad_reader, bad = await asyncio.open_connection("127.0.0.1", port)
        whole = frame(b"<13>1 - - - - - good one")
        good.write(whole[:12])  # octet counting, the first frame incomplete
        bad.write(frame(b"<13>1 - - - - - bad one") + b"<13>1 - - - - - no length")
        assert await asyncio.wait_for(bad_reader.read(), 5) == b""
        good.write(whole[12:] + frame(b"<13>1 - - - - - good two"))
        await wait_for(lambda: len(sink.records) == 3)
        good.close()
        bad.close()
    assert sorted(r["message"] for r in sink.records) == ["bad one", "good one", "good two"]
    assert plugin.framing_errors == 1
    assert plugin.counters()["connections_closed_on_error"] == 1


async def test_long_messages_are_cut_and_counted(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, max_message_bytes=64)
    async with running(plugin, ctx):
        await logger(*remote(plugin, 0, "--octet-count", "--rfc3164"), "-t", "big", "y" * 500)
        await logger(*remote(plugin, 0, "--rfc3164"), "-t", "big", "z" * 500)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"<13>Nov 26 17:00:00 h app: " + b"w" * 500, ("127.0.0.1", plugin.listeners.port(1)))
        await wait_for(lambda: len(sink.records) == 3)
    assert all(r["truncated"] for r in sink.records)
    assert sorted(r["message"][-1] for r in sink.records) == ["w", "y", "z"]
    assert plugin.truncated == 3 and sink.losses["truncated"] == 3


async def test_not_syslog_is_kept_and_counted(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        _, writer = await asyncio.open_connection("127.0.0.1", plugin.listeners.port())
        writer.write(b"just a line\n\n<13>1 - - - - - real\n")
        await writer.drain()
        await wait_for(lambda: len(sink.records) == 2)
        writer.close()
    assert sink.records[0]["parse_error"] == "no valid <PRI> at the start"
    assert sink.records[1]["message"] == "real"
    assert plugin.counters()["parse_errors"] == 1


async def test_pinned_framing_reads_digits_as_text(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, framing="newline")
    async with running(plugin, ctx):
        _, writer = await asyncio.open_connection("127.0.0.1", plugin.listeners.port())
        writer.write(b"5 hello\n")
        await writer.drain()
        await wait_for(lambda: len(sink.records) == 1)
        writer.close()
    assert sink.records[0]["message"] == "5 hello"


async def test_udp_burst_refused_downstream_is_counted(tmp_path: Path) -> None:
    sink = Sink()
    sink.accept_try_emit = False
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        await logger(*remote(plugin, 1), "-t", "x", "dropped")
        await wait_for(lambda: sink.losses["channel_full"] == 1)
    assert sink.records == []


async def test_tcp_backpressure_holds_logger_without_loss(tmp_path: Path) -> None:
    sink = Sink()
    sink.open.clear()
    plugin, ctx = make(tmp_path, sink)
    lines = [f"msg {i:06d} " + "p" * 180 for i in range(60_000)]  # ~12 MB
    source = tmp_path / "many.txt"
    source.write_text("\n".join(lines) + "\n")
    async with running(plugin, ctx):
        sending = asyncio.ensure_future(logger(*remote(plugin, 0, "--octet-count"), "-t", "bp", "-f", str(source)))
        await wait_for(lambda: sink.waiting == 1)
        await asyncio.sleep(0.5)  # not a wait: logger must stay blocked for a while
        assert not sending.done()  # logger is blocked: the input stopped reading its connection
        sink.open.set()
        await asyncio.wait_for(sending, 30)
        await wait_for(lambda: len(sink.records) == len(lines), timeout=30)
    assert sink.messages() == lines


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"listen": "http://x:1"}, "unsupported scheme"),
        ({"listen": ":514", "max_message_bytes": 10}, "max_message_bytes"),
        ({"listen": ":514", "framing": "lines"}, "framing"),
    ],
)
def test_config_errors(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        SyslogConfig(type="syslog", **options)


def test_default_scheme_is_udp() -> None:
    plugin = Syslog(SyslogConfig(type="syslog", listen=":5514"), make_context(Path("/tmp"), Sink()))
    assert [str(a) for a in plugin.listeners.addresses] == ["udp://127.0.0.1:5514"]


async def test_a_thousand_idle_sockets_do_not_lock_out_logger(tmp_path: Path) -> None:
    """Issue 13: max_connections (default 1000) full of idle sockets; `logger` still gets in, an idle one goes."""
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        server = plugin.listeners.server
        assert server is not None
        idle = [await asyncio.open_connection("127.0.0.1", plugin.listeners.port(0)) for _ in range(1000)]
        await wait_for(lambda: len(server.connections) == 1000, timeout=20)
        await asyncio.sleep(EVICT_MIN_IDLE + 0.1)  # not a wait: the sockets must have been idle that long
        await logger(*remote(plugin, 0, "--rfc5424", "-t", "app", "real client"))
        await wait_for(lambda: sink.messages() == ["real client"], timeout=10)
        assert server.evicted == 1
        assert len(server.connections) <= 1000
        for _, w in idle:
            w.close()


async def test_idle_tcp_connections_are_closed_after_idle_timeout(tmp_path: Path) -> None:
    sink = Sink()
    plugin, ctx = make(tmp_path, sink, idle_timeout="200ms")
    async with running(plugin, ctx):
        reader, writer = await asyncio.open_connection("127.0.0.1", plugin.listeners.port(0))
        writer.write(b"<13>1 - h app - - - before going quiet\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    assert sink.messages() == ["before going quiet"]
    assert plugin.counters()["connections_closed_idle"] == 1


async def test_the_listen_backlog_survives_the_server_start(tmp_path: Path) -> None:
    """A burst of clients (say, every container's log driver reconnecting after a restart) waits in the kernel's
    accept queue: 1024, not the 100 asyncio's create_server would set again over the socket's own."""
    sink = Sink()
    plugin, ctx = make(tmp_path, sink)
    async with running(plugin, ctx):
        expected = min(LISTEN_BACKLOG, int(Path("/proc/sys/net/core/somaxconn").read_text()))
        assert listen_backlog(plugin.listeners.port(0)) == expected
