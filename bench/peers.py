"""Side by side with the C agents: RFC 5424 octet-counted syslog over TCP, received and written to a file.

    python -m bench.peers                         # ours, rsyslog, syslog-ng; 5 interleaved rounds
    python -m bench.peers --messages 500000 --rounds 5 --agents ours,rsyslog
    python -m bench.peers --scenario statsd --statsd-rate 400000 --rounds 5   # ours vs collectd

Every agent gets the same workload: `--messages` RFC 5424 messages of 200 bytes, octet-counted, over one TCP
connection from a sender pinned to `--peer-cpu`; the agent runs pinned to `--cpu` with a private config and
writes each message's MSG as one line to a file (ours: `syslog -> file`, codec text; rsyslog: `imtcp` ->
`omfile` with a `%msg%\\n` template; syslog-ng: `syslog()` -> `file()` with `$MSG\\n`). The clock runs from
the first byte sent to the last line in the file. Figures: messages/s and the agent's CPU seconds per
million messages (`/proc/PID/stat`, from the first byte sent to the last line; start-up excluded and
reported apart), medians over `--rounds`
rounds in which the agents take turns, and the ratios ours / peer.

Needs `rsyslogd` (Debian `rsyslog`) and syslog-ng (unpacked by tests/peers/install.sh into
~/.cache/collector-peers/syslog-ng, or `SYSLOG_NG=/path/to/syslog-ng`); an agent that is missing is skipped,
saying so.

`--scenario statsd`: StatsD lines (tag-free: collectd takes no DogStatsD tags), 20 per UDP datagram, paced at
`--statsd-rate` lines/s for `--statsd-seconds` into ours (`statsd -> blackhole`) and collectd (Debian
`collectd-core`, `statsd` + `csv` plugins, started by the bench with a private config; install it with
`apt-get install collectd-core`); prints each one's CPU seconds per million lines received (after start-up)
and the loss from the socket's kernel drop count in `/proc/net/udp`, and the CPU ratio ours / collectd.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.receivers import REPO, free_port, pin, process_cpu, syslog_payload

POLL = 0.005


def octet_counted(count: int) -> bytes:
    lines = syslog_payload(min(count, 10_000)).splitlines()
    framed = b"".join(b"%d %s" % (len(line), line) for line in lines)
    repeats, rest = divmod(count, len(lines))
    return framed * repeats + b"".join(b"%d %s" % (len(line), line) for line in lines[:rest])


def syslog_ng_binary() -> Path | None:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "collector-peers/syslog-ng"
    for candidate in (os.environ.get("SYSLOG_NG"), shutil.which("syslog-ng"), cache / "usr/sbin/syslog-ng"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def ours(work: Path, port: int, out: Path) -> tuple[list[str], dict[str, str] | None]:
    config = work / "collector.yaml"
    (work / "data").mkdir(exist_ok=True)
    config.write_text(
        f"""\
data_dir: {work / "data"}
api: {{enabled: false}}
inputs:
  syslog: {{type: syslog, listen: "tcp://127.0.0.1:{port}"}}
outputs:
  out: {{type: file, inputs: [syslog], path: "{out}", codec: text}}
"""
    )
    return [sys.executable, "-m", "collector", "run", "-c", str(config)], None


def rsyslog(work: Path, port: int, out: Path) -> tuple[list[str], dict[str, str] | None]:
    rsyslogd = shutil.which("rsyslogd")
    assert rsyslogd is not None
    (work / "rsyslog").mkdir(exist_ok=True)
    conf = work / "rsyslog.conf"
    conf.write_text(
        f"""\
global(workDirectory="{work / "rsyslog"}")
module(load="imtcp")
template(name="msgonly" type="string" string="%msg%\\n")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="keep")
ruleset(name="keep") {{
  action(type="omfile" file="{out}" template="msgonly")
}}
"""
    )
    return [rsyslogd, "-n", "-f", str(conf), "-i", str(work / "rsyslog.pid")], None


def syslog_ng(work: Path, port: int, out: Path) -> tuple[list[str], dict[str, str] | None]:
    binary = syslog_ng_binary()
    assert binary is not None
    conf = work / "syslog-ng.conf"
    conf.write_text(
        "@version: 3.38\n"
        "options { use-dns(no); dns-cache(no); keep-hostname(yes); stats-freq(0); };\n"
        f'source s_in {{ syslog(ip("127.0.0.1") port({port}) transport("tcp") max-connections(10)); }};\n'
        f'destination d_out {{ file("{out}" template("$MSG\\n")); }};\n'
        "log { source(s_in); destination(d_out); };\n"
    )
    argv = [str(binary), "-F", "-f", str(conf), "--persist-file", str(work / "persist")]
    argv += ["--pidfile", str(work / "ng.pid"), "--control", str(work / "ctl")]
    env = dict(os.environ)
    modules = binary.parent.parent / "lib/syslog-ng"
    if modules.is_dir():  # unpacked, not installed: its own libraries and modules
        versions = sorted(p for p in modules.iterdir() if p.is_dir())
        argv += ["--module-path", str(versions[-1])]
        env["LD_LIBRARY_PATH"] = f"{modules}:{env.get('LD_LIBRARY_PATH', '')}"
    return argv, env


AGENTS: dict[str, Callable[[Path, int, Path], tuple[list[str], dict[str, str] | None]]] = {
    "ours": ours,
    "rsyslog": rsyslog,
    "syslog-ng": syslog_ng,
}


def missing(agent: str) -> str | None:
    if agent == "rsyslog" and shutil.which("rsyslogd") is None:
        return "rsyslogd not found (apt-get install rsyslog)"
    if agent == "syslog-ng" and syslog_ng_binary() is None:
        return "syslog-ng not found (tests/peers/install.sh unpacks it; or set SYSLOG_NG)"
    return None


def count_lines(path: Path, state: dict[str, int]) -> int:
    try:
        with path.open("rb") as f:
            f.seek(state.get("offset", 0))
            data = f.read()
    except FileNotFoundError:
        return 0
    state["offset"] = state.get("offset", 0) + len(data)
    state["lines"] = state.get("lines", 0) + data.count(b"\n")
    return state["lines"]


def one_run(agent: str, payload: bytes, messages: int, cpu: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"bench-peers-{agent}-") as tmp:
        work, port = Path(tmp), free_port()
        out = work / "out.log"
        argv, env = AGENTS[agent](work, port, out)
        launched = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
        try:
            deadline = time.monotonic() + 30
            while True:  # ready once it accepts a connection
                try:
                    conn = socket.create_connection(("127.0.0.1", port))
                    break
                except ConnectionRefusedError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"{agent} did not start: {proc.stderr.read().decode()[-500:]}") from None  # type: ignore[union-attr]
                    time.sleep(POLL)
            ready = time.perf_counter()
            cpu0 = process_cpu(proc.pid)
            t0 = time.perf_counter()
            with conn:
                conn.sendall(payload)
                state: dict[str, int] = {}
                end = time.monotonic() + timeout
                while count_lines(out, state) < messages:
                    if time.monotonic() > end:
                        raise SystemExit(f"{agent}: only {state.get('lines', 0)} of {messages} lines written")
                    time.sleep(POLL)
            seconds = time.perf_counter() - t0
            cpu_seconds = process_cpu(proc.pid) - cpu0
        finally:
            proc.terminate()
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    return {
        "per_s": messages / seconds,
        "cpu_per_million": cpu_seconds / messages * 1e6,
        "start_seconds": ready - launched,
    }


# -- StatsD: ours beside collectd ---------------------------------------------------------------------

STATSD_LINES_PER_DATAGRAM = 20


def statsd_datagrams(count: int = 500) -> list[bytes]:
    """Tag-free lines (collectd's statsd plugin takes no DogStatsD tags): counters, timers with a sample
    rate, gauges, sets over 200 series, 20 lines per datagram."""
    rnd = random.Random(7)
    out = []
    for _ in range(count):
        lines = []
        for _ in range(STATSD_LINES_PER_DATAGRAM):
            kind, series = rnd.random(), rnd.randrange(50)
            if kind < 0.4:
                lines.append(f"app.requests.{series}:1|c")
            elif kind < 0.8:
                lines.append(f"app.latency.{series}:{rnd.lognormvariate(3, 0.8):.3f}|ms|@0.5")
            elif kind < 0.9:
                lines.append(f"app.queue.{series}:{rnd.randrange(100)}|g")
            else:
                lines.append(f"app.users.{series % 5}:user{rnd.randrange(1000)}|s")
        out.append("\n".join(lines).encode())
    return out


def udp_socket_drops(port: int) -> int | None:
    """The kernel's drop count of the UDP socket bound to `port` (`/proc/net/udp`), None if none is bound."""
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            return int(fields[-1])
    return None


def statsd_argv(agent: str, work: Path, port: int) -> list[str]:
    if agent == "ours":
        config = work / "collector.yaml"
        (work / "data").mkdir(exist_ok=True)
        config.write_text(
            f"""\
data_dir: {work / "data"}
api: {{enabled: false}}
inputs:
  statsd: {{type: statsd, listen: ["udp://127.0.0.1:{port}"]}}
outputs:
  sink: {{type: blackhole, inputs: [statsd]}}
"""
        )
        return [sys.executable, "-m", "collector", "run", "-c", str(config)]
    collectd = shutil.which("collectd") or "/usr/sbin/collectd"
    conf = work / "collectd.conf"
    conf.write_text(
        f"""\
Hostname "bench"
BaseDir "{work}"
PIDFile "{work}/collectd.pid"
Interval 10
LoadPlugin statsd
LoadPlugin csv
<Plugin statsd>
  Host "127.0.0.1"
  Port "{port}"
</Plugin>
<Plugin csv>
  DataDir "{work}/csv"
</Plugin>
"""
    )
    return [collectd, "-f", "-C", str(conf)]


def statsd_run(agent: str, rate: int, seconds: float, cpu: int) -> dict[str, Any]:
    payloads = statsd_datagrams()
    with tempfile.TemporaryDirectory(prefix=f"bench-peers-statsd-{agent}-") as tmp:
        work, port = Path(tmp), free_udp_port()
        proc = subprocess.Popen(
            statsd_argv(agent, work, port),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
        try:
            deadline = time.monotonic() + 30
            while udp_socket_drops(port) is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{agent} did not bind udp port {port}")
                time.sleep(POLL)
            time.sleep(0.5)  # let start-up finish: the CPU counted is the receiving
            drops0, cpu0 = udp_socket_drops(port) or 0, process_cpu(proc.pid)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            per_second = rate / STATSD_LINES_PER_DATAGRAM
            total = int(per_second * seconds)
            start = time.perf_counter()
            for i in range(total):
                due = start + i / per_second
                while time.perf_counter() < due:
                    if due - time.perf_counter() > 0.002:
                        time.sleep(0.001)
                sock.sendto(payloads[i % len(payloads)], ("127.0.0.1", port))
            elapsed = time.perf_counter() - start
            sock.close()
            time.sleep(0.5)  # what is queued in the socket is read
            cpu_seconds = process_cpu(proc.pid) - cpu0
            dropped = ((udp_socket_drops(port) or 0) - drops0) * STATSD_LINES_PER_DATAGRAM
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    lines = total * STATSD_LINES_PER_DATAGRAM
    return {
        "offered_per_s": lines / elapsed,
        "cpu_per_million": cpu_seconds / max(lines - dropped, 1) * 1e6,  # per line received
        "loss_percent": 100.0 * dropped / lines,
    }


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def statsd_main(args: argparse.Namespace) -> None:
    agents = ["ours"]
    if shutil.which("collectd") or Path("/usr/sbin/collectd").is_file():
        agents.append("collectd")
    else:
        print("skipping collectd: not found (apt-get install collectd-core)")
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in agents}
    for _ in range(args.rounds):
        for agent in agents:
            runs[agent].append(statsd_run(agent, args.statsd_rate, args.statsd_seconds, args.cpu))
    print(
        f"StatsD UDP, {STATSD_LINES_PER_DATAGRAM} lines/datagram, paced at {args.statsd_rate:,} lines/s for "
        f"{args.statsd_seconds:g} s, medians of {args.rounds} rounds (loss: the socket's kernel drop count)"
    )
    medians = {
        a: {k: statistics.median(r[k] for r in rs) for k in ("offered_per_s", "cpu_per_million", "loss_percent")}
        for a, rs in runs.items()
    }
    for agent, m in medians.items():
        print(
            f"  {agent:10s} offered {m['offered_per_s']:>10,.0f} lines/s  {m['cpu_per_million']:6.2f} CPU-s per M  "
            f"loss {m['loss_percent']:.3f} %"
        )
    if "collectd" in medians:
        ratio = medians["ours"]["cpu_per_million"] / medians["collectd"]["cpu_per_million"]
        print(f"  ours / collectd: CPU per line ratio {ratio:.2f} (target <= 1.5)")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--agents", default="ours,rsyslog,syslog-ng")
    parser.add_argument("--cpu", type=int, default=0, help="CPU for the agent (default 0)")
    parser.add_argument("--peer-cpu", type=int, default=1, help="CPU for the sender (default 1)")
    parser.add_argument("--scenario", choices=["syslog", "statsd"], default="syslog")
    parser.add_argument("--statsd-rate", type=int, default=400_000, help="statsd: lines/s offered")
    parser.add_argument("--statsd-seconds", type=float, default=5.0, help="statsd: seconds per run")
    args = parser.parse_args()
    if args.scenario == "statsd":
        pin(args.peer_cpu)
        statsd_main(args)
        return 0
    agents = []
    for agent in args.agents.split(","):
        if agent not in AGENTS:
            parser.error(f"unknown agent {agent!r}; known: {', '.join(AGENTS)}")
        why = missing(agent)
        if why:
            print(f"skipping {agent}: {why}")
        else:
            agents.append(agent)
    pin(args.peer_cpu)
    payload = octet_counted(args.messages)
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in agents}
    for _ in range(args.rounds):
        for agent in agents:  # interleaved: load on the machine hits every agent alike
            runs[agent].append(one_run(agent, payload, args.messages, args.cpu, timeout=300))
    medians = {
        a: {k: statistics.median(r[k] for r in rs) for k in ("per_s", "cpu_per_million", "start_seconds")}
        for a, rs in runs.items()
    }
    print(f"syslog RFC 5424 octet-counted TCP -> file, {args.messages:,} messages, medians of {args.rounds} rounds")
    for agent, m in medians.items():
        print(
            f"  {agent:10s} {m['per_s']:>12,.0f} msg/s  {m['cpu_per_million']:6.2f} CPU-s per M  "
            f"(start-up {m['start_seconds']:.2f} s)"
        )
    if "ours" in medians:
        for agent in medians:
            if agent != "ours":
                rate = medians["ours"]["per_s"] / medians[agent]["per_s"]
                cpu = medians["ours"]["cpu_per_million"] / medians[agent]["cpu_per_million"]
                print(f"  ours / {agent}: msg/s ratio {rate:.2f}, CPU per message ratio {cpu:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
