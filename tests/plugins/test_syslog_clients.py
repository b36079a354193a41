"""The `syslog` input receiving from rsyslog as a relay: a local program logs to rsyslog's unix socket (imuxsock,
the way /dev/log works) with util-linux `logger`, and rsyslog forwards with `omfwd` over TCP to the input, in
RFC 5424 with octet counting (`RSYSLOG_SyslogProtocol23Format`) and in the traditional RFC 3164 format
(`RSYSLOG_TraditionalForwardFormat`). Skipped, saying why, where rsyslogd (Debian `rsyslog`) is not installed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from collector.testing import free_port, wait_for
from collector_plugins.inputs.syslog.input import Syslog, SyslogConfig
from tests.plugins.receiver_support import Sink, make_context, running

RSYSLOGD = shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)
pytestmark = [
    pytest.mark.skipif(RSYSLOGD is None, reason="rsyslogd (Debian rsyslog) is not installed"),
    pytest.mark.skipif(shutil.which("logger") is None, reason="util-linux logger is not installed"),
]
RELAY_HOST = "relay-7.example"  # what rsyslog is told to call itself, so the test does not depend on the machine

TEMPLATES = {
    "rfc5424_octet_counted": 'template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted"',
    "rfc3164_traditional": 'template="RSYSLOG_TraditionalForwardFormat"',
}


@asynccontextmanager
async def rsyslog_relay(tmp_path: Path, port: int, template: str, udp_port: int) -> AsyncIterator[Path]:
    """rsyslogd in the foreground: imuxsock on a socket of its own and imudp on `udp_port` (devices) -> omfwd TCP
    to `port`. Yields the socket."""
    work = tmp_path / "rsyslog"
    work.mkdir()
    sock = work / "log.sock"
    conf = work / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{work}" localHostname="{RELAY_HOST}" net.enableDNS="off")\n'
        'module(load="imuxsock" SysSock.Use="off")\n'
        f'input(type="imuxsock" Socket="{sock}" RateLimit.Interval="0")\n'
        'module(load="imudp")\n'
        f'input(type="imudp" address="127.0.0.1" port="{udp_port}")\n'
        f'action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" {template})\n'
    )
    assert RSYSLOGD is not None
    proc = await asyncio.create_subprocess_exec(
        RSYSLOGD,
        "-n",
        "-f",
        str(conf),
        "-i",
        str(work / "rsyslogd.pid"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for(lambda: sock.exists() or proc.returncode is not None, timeout=10)
        await wait_for(lambda: udp_bound(udp_port) or proc.returncode is not None, timeout=10)
        if proc.returncode is not None:
            assert proc.stderr is not None
            pytest.fail(f"rsyslogd exited: {(await proc.stderr.read()).decode()}")
        yield sock
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def logger(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec("logger", *args, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err.decode()


def udp_bound(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`/UDP, read from /proc (probing with bind would race rsyslog)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1] == wanted for line in list(table)[1:])


def send_udp(port: int, text: str) -> None:
    """A datagram as a network device sends it to its syslog server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(text.encode(), ("127.0.0.1", port))


def send_raw(sock: Path, text: str) -> None:
    """A datagram as a program (or a device's log daemon) writes it to /dev/log."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        client.sendto(text.encode(), str(sock))


@pytest.mark.parametrize("template", list(TEMPLATES), ids=list(TEMPLATES))
async def test_rsyslog_relay_forwards_what_programs_log(tmp_path: Path, template: str) -> None:
    sink = Sink()
    ctx = make_context(tmp_path, sink)
    plugin = Syslog(SyslogConfig(type="syslog", listen="tcp://127.0.0.1:0"), ctx)
    before = time.time()
    udp_port = free_port(socket.SOCK_DGRAM)
    async with running(plugin, ctx):
        relay = rsyslog_relay(tmp_path, plugin.listeners.port(0), TEMPLATES[template], udp_port)
        async with relay as sock:
            await logger("--socket", str(sock), "-d", "-p", "local3.warning", "-t", "billing", "--id=4711", "sent")
            await wait_for(lambda: len(sink.records) >= 1, timeout=10)
            # Lines in the shapes small daemons write to /dev/log, through the relay, one at a time to keep the order.
            send_raw(sock, "<30>Nov 26 11:59:01 sshd[4242]: Accepted publickey for admin")
            await wait_for(lambda: len(sink.records) >= 2, timeout=10)
            send_raw(sock, "<13>Nov 26 11:58:00 root: hello from busybox")
            await wait_for(lambda: len(sink.records) >= 3, timeout=10)
            # And network devices' lines over UDP: rsyslog parses them (pmrfc3164) and forwards what it found.
            send_udp(udp_port, "<189>Jan  6 2009 15:22:26: %SYS-5-CONFIG_I: Configured from console by vty0")
            await wait_for(lambda: len(sink.records) >= 4, timeout=10)
            send_udp(udp_port, "<28>Mar 11 14:19:05 mx960-re0 mib2d[1624]: SNMP_TRAP_LINK_DOWN: ifIndex 548")
            await wait_for(lambda: len(sink.records) >= 5, timeout=10)
    records: list[dict[str, Any]] = sink.records
    assert len(records) == 5
    for record in records:
        assert "parse_error" not in record, record
    cisco, juniper = records[3:]
    records = records[:3]
    for record in records:
        assert "parse_error" not in record, record
        assert record["host"] == RELAY_HOST
        assert before - 2 <= record["timestamp"] <= time.time() + 1  # imuxsock stamps with the time it received
    # rsyslog's MSG of a BSD line keeps the space after TAG, and its RFC 5424 template sends MSG as it is: RFC 5424
    # MSG is kept exactly as sent (that space included); the RFC 3164 form separates TAG and MSG with it.
    lead = " " if template.startswith("rfc5424") else ""
    first, sshd, busybox = records
    assert (first["facility"], first["severity"], first["app"], first["procid"], first["message"]) == (
        "local3",
        "warning",
        "billing",
        "4711",
        lead + "sent",
    )
    assert (sshd["facility"], sshd["severity"], sshd["app"], sshd["procid"]) == ("daemon", "info", "sshd", "4242")
    assert sshd["message"] == lead + "Accepted publickey for admin"
    assert (busybox["app"], busybox["message"]) == ("root", lead + "hello from busybox")
    assert (cisco["facility"], cisco["severity"], cisco["host"]) == ("local7", "notice", "127.0.0.1")
    assert (cisco["app"], cisco["message"]) == ("%SYS-5-CONFIG_I", lead + "Configured from console by vty0")
    assert (juniper["facility"], juniper["severity"], juniper["host"]) == ("daemon", "warning", "mx960-re0")
    assert (juniper["app"], juniper["procid"]) == ("mib2d", "1624")
    assert juniper["message"] == lead + "SNMP_TRAP_LINK_DOWN: ifIndex 548"
    if template.startswith("rfc5424"):  # the RFC 3164 form cannot carry the year: only RFC 5424 keeps it
        assert time.localtime(cisco["timestamp"])[:6] == (2009, 1, 6, 15, 22, 26)
