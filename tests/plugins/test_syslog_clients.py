"""The `syslog` input receiving from real relays: rsyslog and syslog-ng take what local programs write to their unix
socket (the way /dev/log works; util-linux `logger` and raw datagrams) and what network devices send them over UDP,
and forward it over TCP to the input, each in RFC 5424 with octet counting and in the traditional RFC 3164 form:

- rsyslog `omfwd` with `RSYSLOG_SyslogProtocol23Format` + `TCP_Framing="octet-counted"`, and with
  `RSYSLOG_TraditionalForwardFormat` (newline framed);
- syslog-ng `syslog()` (RFC 5424, octet counting) and `network()` (RFC 3164, newline framed).

A relay that is not on the machine is skipped, saying which: rsyslogd from Debian `rsyslog`; syslog-ng (it conflicts
with rsyslog as a package) from PATH, $SYSLOG_NG, or where tests/peers/install.sh unpacks it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from collector.testing import free_port, wait_for
from collector_plugins.inputs.syslog.input import Syslog, SyslogConfig
from tests.plugins.receiver_support import Sink, make_context, running


def find_rsyslogd() -> str | None:
    return shutil.which("rsyslogd") or ("/usr/sbin/rsyslogd" if os.path.exists("/usr/sbin/rsyslogd") else None)


def find_syslog_ng() -> Path | None:
    """The syslog-ng binary and the root it was unpacked into (its libraries and modules live under it)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "collector-peers/syslog-ng"
    for candidate in (os.environ.get("SYSLOG_NG"), shutil.which("syslog-ng"), cache / "usr/sbin/syslog-ng"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


RSYSLOGD = find_rsyslogd()
SYSLOG_NG = find_syslog_ng()
pytestmark = pytest.mark.skipif(shutil.which("logger") is None, reason="util-linux logger is not installed")
RSYSLOG_HOST = "relay-7.example"  # what rsyslog is told to call itself, so the test does not depend on the machine


@asynccontextmanager
async def foreground(
    argv: list[str], ready: Callable[[], bool], env: dict[str, str] | None = None
) -> AsyncIterator[None]:
    """Run a daemon in the foreground until the block ends (SIGTERM, then SIGKILL), once `ready()` holds."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        await wait_for(lambda: ready() or proc.returncode is not None, timeout=10)
        if proc.returncode is not None:
            assert proc.stderr is not None
            pytest.fail(f"{argv[0]} exited: {(await proc.stderr.read()).decode()}")
        yield
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def udp_bound(port: int) -> bool:
    """Whether something listens on 127.0.0.1:`port`/UDP, read from /proc (probing with bind would race the relay)."""
    wanted = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1] == wanted for line in list(table)[1:])


@asynccontextmanager
async def rsyslog(work: Path, tcp_port: int, udp_port: int, rfc5424: bool) -> AsyncIterator[Path]:
    """rsyslogd: imuxsock on a socket of its own and imudp on `udp_port` -> omfwd TCP to `tcp_port`."""
    assert RSYSLOGD is not None
    sock = work / "log.sock"
    template = (
        'template="RSYSLOG_SyslogProtocol23Format" TCP_Framing="octet-counted"'
        if rfc5424
        else 'template="RSYSLOG_TraditionalForwardFormat"'
    )
    conf = work / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{work}" localHostname="{RSYSLOG_HOST}" net.enableDNS="off")\n'
        'module(load="imuxsock" SysSock.Use="off")\n'
        f'input(type="imuxsock" Socket="{sock}" RateLimit.Interval="0")\n'
        'module(load="imudp")\n'
        f'input(type="imudp" address="127.0.0.1" port="{udp_port}")\n'
        f'action(type="omfwd" target="127.0.0.1" port="{tcp_port}" protocol="tcp" {template})\n'
    )
    argv = [RSYSLOGD, "-n", "-f", str(conf), "-i", str(work / "rsyslogd.pid")]
    async with foreground(argv, lambda: sock.exists() and udp_bound(udp_port)):
        yield sock


@asynccontextmanager
async def syslog_ng(work: Path, tcp_port: int, udp_port: int, rfc5424: bool) -> AsyncIterator[Path]:
    """syslog-ng: unix-dgram and udp() sources -> syslog() (RFC 5424) or network() (RFC 3164) over TCP."""
    assert SYSLOG_NG is not None
    root = SYSLOG_NG.parent.parent.parent  # .../usr/sbin/syslog-ng -> the unpacked root
    sock = work / "log.sock"
    driver = "syslog" if rfc5424 else "network"
    conf = work / "syslog-ng.conf"
    conf.write_text(
        "@version: 3.38\n"
        "options { use-dns(no); dns-cache(no); keep-hostname(yes); stats-freq(0); };\n"
        f'source s_in {{ unix-dgram("{sock}"); udp(ip("127.0.0.1") port({udp_port})); }};\n'
        f'destination d_out {{ {driver}("127.0.0.1" port({tcp_port}) transport("tcp")); }};\n'
        "log { source(s_in); destination(d_out); };\n"
    )
    argv = [str(SYSLOG_NG), "-F", "-f", str(conf), "--persist-file", str(work / "persist")]
    argv += ["--pidfile", str(work / "pid"), "--control", str(work / "ctl")]
    env = dict(os.environ)
    modules = root / "usr/lib/syslog-ng"
    if modules.is_dir():  # unpacked, not installed: point it at its own libraries and modules
        versions = sorted(p for p in modules.iterdir() if p.is_dir())
        argv += ["--module-path", str(versions[-1])]
        env["LD_LIBRARY_PATH"] = f"{modules}:{env.get('LD_LIBRARY_PATH', '')}"
    async with foreground(argv, lambda: sock.exists() and udp_bound(udp_port), env):
        yield sock


class Relay(NamedTuple):
    start: Callable[[Path, int, int, bool], AbstractAsyncContextManager[Path]]
    rfc5424: bool
    local_host: str  # the host name the relay gives what local programs log


RELAYS = {
    "rsyslog_rfc5424_octet_counted": Relay(rsyslog, True, RSYSLOG_HOST),
    "rsyslog_rfc3164_traditional": Relay(rsyslog, False, RSYSLOG_HOST),
    "syslog_ng_rfc5424_syslog_driver": Relay(syslog_ng, True, socket.gethostname()),
    "syslog_ng_rfc3164_network_driver": Relay(syslog_ng, False, socket.gethostname()),
}


def missing(name: str) -> str | None:
    if name.startswith("rsyslog") and RSYSLOGD is None:
        return "rsyslogd (Debian rsyslog) is not installed"
    if name.startswith("syslog_ng") and SYSLOG_NG is None:
        return "syslog-ng is not installed (tests/peers/install.sh unpacks it)"
    return None


async def logger(*args: str) -> None:
    proc = await asyncio.create_subprocess_exec("logger", *args, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err.decode()


def send_udp(port: int, text: str) -> None:
    """A datagram as a network device sends it to its syslog server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(text.encode(), ("127.0.0.1", port))


def send_local(sock: Path, text: str) -> None:
    """A datagram as a program (or a small device's log daemon) writes it to /dev/log."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        client.sendto(text.encode(), str(sock))


@pytest.mark.parametrize("name", list(RELAYS), ids=list(RELAYS))
async def test_relay_forwards_what_programs_and_devices_send(tmp_path: Path, name: str) -> None:
    reason = missing(name)
    if reason:
        pytest.skip(reason)
    relay = RELAYS[name]
    sink = Sink()
    ctx = make_context(tmp_path, sink)
    plugin = Syslog(SyslogConfig(type="syslog", listen="tcp://127.0.0.1:0"), ctx)
    before = time.time()
    udp_port = free_port(socket.SOCK_DGRAM)
    work = tmp_path / "relay"
    work.mkdir()
    async with running(plugin, ctx), relay.start(work, plugin.listeners.port(0), udp_port, relay.rfc5424) as sock:
        # One at a time, so that the order is known.
        await logger("--socket", str(sock), "-d", "-p", "local3.warning", "-t", "billing", "--id=4711", "sent")
        await wait_for(lambda: len(sink.records) >= 1, timeout=10)
        send_local(sock, "<30>Nov 26 11:59:01 sshd[4242]: Accepted publickey for admin")
        await wait_for(lambda: len(sink.records) >= 2, timeout=10)
        send_local(sock, "<13>Nov 26 11:58:00 root: hello from busybox")
        await wait_for(lambda: len(sink.records) >= 3, timeout=10)
        send_udp(udp_port, "<189>Jan  6 2009 15:22:26: %SYS-5-CONFIG_I: Configured from console by vty0")
        await wait_for(lambda: len(sink.records) >= 4, timeout=10)
        send_udp(udp_port, "<28>Mar 11 14:19:05 mx960-re0 mib2d[1624]: SNMP_TRAP_LINK_DOWN: ifIndex 548")
        await wait_for(lambda: len(sink.records) >= 5, timeout=10)
    records: list[dict[str, Any]] = sink.records
    assert len(records) == 5
    for record in records:
        assert "parse_error" not in record, record
    first, sshd, busybox, cisco, juniper = records
    for record in (first, sshd, busybox):
        assert record["host"] == relay.local_host
    assert before - 2 <= first["timestamp"] <= time.time() + 1
    # rsyslog's MSG of a BSD line keeps the space after TAG, and its RFC 5424 template sends MSG as it is: RFC 5424
    # MSG is kept exactly as sent (that space included). syslog-ng's MSG does not have that space.
    lead = " " if relay.rfc5424 and name.startswith("rsyslog") else ""
    assert (first["facility"], first["severity"], first["app"], first["procid"], first["message"]) == (
        "local3",
        "warning",
        "billing",
        "4711",
        lead + "sent",
    )
    assert (sshd["facility"], sshd["severity"], sshd["app"], sshd["procid"]) == ("daemon", "info", "sshd", "4242")
    assert sshd["message"] == lead + "Accepted publickey for admin"
    assert (busybox["facility"], busybox["app"], busybox["message"]) == ("user", "root", lead + "hello from busybox")
    assert (cisco["facility"], cisco["severity"]) == ("local7", "notice")
    assert (cisco["app"], cisco["message"]) == ("%SYS-5-CONFIG_I", lead + "Configured from console by vty0")
    assert (juniper["facility"], juniper["severity"], juniper["host"]) == ("daemon", "warning", "mx960-re0")
    assert (juniper["app"], juniper["procid"]) == ("mib2d", "1624")
    assert juniper["message"] == lead + "SNMP_TRAP_LINK_DOWN: ifIndex 548"
    if relay.rfc5424:  # the RFC 3164 form cannot carry the year: only RFC 5424 keeps it
        assert time.localtime(cisco["timestamp"])[:6] == (2009, 1, 6, 15, 22, 26)
