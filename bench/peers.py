"""Side by side with the C agents: RFC 5424 octet-counted syslog over TCP, received and written to a file.

    python -m bench.peers                         # ours, rsyslog, syslog-ng; 5 interleaved rounds
    python -m bench.peers --messages 500000 --rounds 5 --agents ours,rsyslog

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
saying so. The StatsD comparison with collectd is not here yet (see docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
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


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.peers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--agents", default="ours,rsyslog,syslog-ng")
    parser.add_argument("--cpu", type=int, default=0, help="CPU for the agent (default 0)")
    parser.add_argument("--peer-cpu", type=int, default=1, help="CPU for the sender (default 1)")
    args = parser.parse_args()
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
