"""Receiver benchmarks: one core for the collector, 200-byte lines.

    python -m bench.receivers                      # every scenario
    python -m bench.receivers syslog --messages 2000000
    python -m bench.receivers forward --messages 2000000
    python -m bench.receivers file_socket --messages 1000000

- `syslog`: RFC 5424 messages, newline-framed, over one TCP connection into
  `syslog -> blackhole`. Target: >= 200,000 messages/s.
- `forward`: Fluent forward PackedForward chunks of 1,000 Docker-shaped
  records (`log` of 200 bytes), each with a `chunk` id, over one TCP
  connection into `forward -> blackhole`; the sender keeps at most 16 chunks
  unacknowledged and the clock stops when the last ack arrives.
  Target: >= 200,000 records/s with acknowledgements on.
- `file_socket`: a file of 200-byte lines read from the beginning and sent
  over TCP to a line-counting sink, by the collector (`file -> socket`,
  codec text) and by rsyslog (`imfile` -> `omfwd` with a `%msg%\\n`
  template), one after the other in the same run; prints both rates and the
  ratio ours / rsyslog (target >= 1.0), measured from the first line at the
  sink to the last, and also counting from each process's launch (Python's
  start-up is ~0.5 s). CPU seconds are the whole process's, start-up
  included. Needs `rsyslogd` (Debian `rsyslog`).

The collector (and rsyslog) run in a fresh process pinned to `--cpu`
(default 0); senders and sinks run pinned to `--peer-cpu` (default 1).
Each figure is events / wall seconds from the first event delivered to the
last, plus the collector process's CPU seconds over the same interval.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

REPO = Path(__file__).resolve().parent.parent
LINE_BYTES = 200
POLL = 0.005


# -- payloads ---------------------------------------------------------------------------------------------


def log_line(i: int, size: int = LINE_BYTES) -> str:
    head = f"2026-11-26T17:00:00.{i % 1000:03d}Z INFO request handled id={i:08d} path=/api/v1/items status=200 "
    return (head + "x" * size)[:size]


def syslog_payload(count: int) -> bytes:
    """`count` distinct newline-framed RFC 5424 messages of 200 bytes each (the newline included)."""
    lines = []
    for i in range(count):
        stamp = f"2026-11-26T17:00:{i % 60:02d}.{i % 1000000:06d}Z"
        head = f"<134>1 {stamp} web-{i % 8}.example.com nginx {1000 + i % 50} - - "
        lines.append((head + log_line(i))[: LINE_BYTES - 1] + "\n")
    return "".join(lines).encode()


def forward_entries(count: int) -> bytes:
    """A PackedForward entry stream: `count` [EventTime, record] pairs shaped like Docker's fluentd driver."""
    packer = msgpack.Packer()
    out = bytearray()
    for i in range(count):
        now = time.time()
        stamp = msgpack.ExtType(0, int(now).to_bytes(4, "big") + int((now % 1) * 1e9).to_bytes(4, "big"))
        record = {
            "container_id": "3f2e" * 16,
            "container_name": "/web-1",
            "source": "stdout",
            "log": log_line(i),
        }
        out += packer.pack([stamp, record])
    return bytes(out)


# -- the collector under test -------------------------------------------------------------------------------


def worker(config_path: str, total: int) -> None:
    """Run the collector from `config_path` until its `sink` output delivered `total` events; print figures."""
    import asyncio

    import uvloop

    from collector.api import HostFacts
    from collector.config import load_config
    from collector.runtime import Runtime

    async def measure() -> dict[str, Any]:
        config = load_config(config_path)
        runtime = Runtime(config.data_dir, HostFacts(socket.gethostname()))
        await runtime.apply(config.graph)
        # `apply` only creates the component tasks; an input binds its sockets in `start()`, after which its
        # supervisor marks it running. Report ready only then, or the sender meets ConnectionRefused.
        while not all(st.state == "running" for st in runtime.stats.values()):
            await asyncio.sleep(POLL)
        print("ready", flush=True)
        sink = runtime.stats["sink"]
        while sink.sent_events == 0:
            await asyncio.sleep(POLL)
        t0, cpu0 = time.perf_counter(), time.process_time()
        first = sink.sent_events
        while sink.sent_events < total:
            await asyncio.sleep(POLL)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        await runtime.shutdown(10)
        return {
            "events": total - first,
            "seconds": seconds,
            "cpu_seconds": cpu,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(measure())
    print(json.dumps(result), flush=True)


def start_worker(config: str, total: int, cpu: int, workdir: Path) -> subprocess.Popen[str]:
    path = workdir / "collector.yaml"
    path.write_text(config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.receivers", "--worker", str(path), str(total)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"collector did not start: {line!r}")
    return proc


def finish_worker(proc: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert proc.stdout is not None
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise SystemExit("the collector did not deliver everything in time") from None
    return json.loads(out.strip().splitlines()[-1])


def pin(cpu: int) -> None:
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:
        pass  # fewer CPUs than asked for: run unpinned


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- scenarios ------------------------------------------------------------------------------------------------


def run_syslog(messages: int, cpu: int, peer_cpu: int) -> dict[str, Any]:
    port = free_port()
    config = f"""\
data_dir: {{data_dir}}
api: {{enabled: false}}
inputs:
  syslog: {{type: syslog, listen: "tcp://127.0.0.1:{port}"}}
outputs:
  sink: {{type: blackhole, inputs: [syslog]}}
"""
    payload = syslog_payload(10_000)
    per_payload = 10_000
    with tempfile.TemporaryDirectory(prefix="bench-syslog-") as tmp:
        proc = start_worker(config.replace("{data_dir}", tmp), messages, cpu, Path(tmp))
        pin(peer_cpu)
        with socket.create_connection(("127.0.0.1", port)) as conn:
            sent = 0
            while sent < messages:
                take = min(per_payload, messages - sent)
                conn.sendall(payload if take == per_payload else payload[: take * LINE_BYTES])
                sent += take
            result = finish_worker(proc, timeout=120)
    return {"scenario": "syslog (tcp) -> blackhole", **result}


def run_forward(records: int, cpu: int, peer_cpu: int, chunk_records: int = 1000, window: int = 16) -> dict[str, Any]:
    port = free_port()
    config = f"""\
data_dir: {{data_dir}}
api: {{enabled: false}}
inputs:
  fwd: {{type: forward, listen: "tcp://127.0.0.1:{port}"}}
outputs:
  sink: {{type: blackhole, inputs: [fwd]}}
"""
    entries = forward_entries(chunk_records)
    chunks = -(-records // chunk_records)
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        proc = start_worker(config.replace("{data_dir}", tmp), chunks * chunk_records, cpu, Path(tmp))
        pin(peer_cpu)
        with socket.create_connection(("127.0.0.1", port)) as conn:
            acked = threading.Semaphore(window)
            acks: list[str] = []
            done = threading.Event()

            def read_acks() -> None:
                unpacker = msgpack.Unpacker(raw=False)
                while len(acks) < chunks:
                    data = conn.recv(65536)
                    if not data:
                        break
                    unpacker.feed(data)
                    for message in unpacker:
                        acks.append(message["ack"])
                        acked.release()
                done.set()

            reader = threading.Thread(target=read_acks, daemon=True)
            reader.start()
            t0 = time.perf_counter()
            for n in range(chunks):
                acked.acquire()
                option = {"size": chunk_records, "chunk": f"c{n:08d}"}
                conn.sendall(msgpack.packb(["bench.app", entries, option], use_bin_type=True))
            done.wait(120)
            client_seconds = time.perf_counter() - t0
            result = finish_worker(proc, timeout=120)
    if len(acks) != chunks:
        raise SystemExit(f"forward: {len(acks)} of {chunks} chunks acknowledged")
    return {
        "scenario": "forward -> blackhole (acks)",
        **result,
        "acked_records_per_s": chunks * chunk_records / client_seconds,
    }


class LineSink:
    """A TCP server (in a thread) that counts newline-terminated lines and notes when it has `total`."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.lines = 0
        self.first: float | None = None
        self.done: float | None = None
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.finished = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.finished.is_set():
            conn, _ = self.server.accept()
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn:
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    return
                if self.first is None:
                    self.first = time.perf_counter()
                self.lines += data.count(b"\n")
                if self.lines >= self.total and self.done is None:
                    self.done = time.perf_counter()
                    self.finished.set()

    def close(self) -> None:
        self.finished.set()
        self.server.close()


def write_lines(path: Path, count: int) -> None:
    block = "".join(log_line(i, LINE_BYTES - 1) + "\n" for i in range(10_000)).encode()
    with path.open("wb") as f:
        written = 0
        while written < count:
            take = min(10_000, count - written)
            f.write(block if take == 10_000 else block[: take * LINE_BYTES])
            written += take


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_run(
    cmd: list[str], sink: LineSink, cpu: int, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    launched = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    try:
        if not sink.finished.wait(timeout):
            raise SystemExit(f"{cmd[0]}: only {sink.lines} of {sink.total} lines arrived")
        cpu_seconds = process_cpu(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert sink.first is not None and sink.done is not None
    return {
        "events": sink.total,
        "seconds": sink.done - sink.first,
        "seconds_from_launch": sink.done - launched,
        "cpu_seconds": cpu_seconds,
        "stderr_tail": err.decode()[-500:],
    }


RSYSLOG_CONF = """\
global(workDirectory="{workdir}")
module(load="imfile" mode="inotify")
template(name="msgonly" type="string" string="%msg%\\n")
input(type="imfile" file="{path}" tag="bench" ruleset="ship")
ruleset(name="ship") {{
  action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" template="msgonly")
}}
"""


def run_file_socket(lines: int, cpu: int, peer_cpu: int) -> dict[str, Any]:
    rsyslogd = shutil.which("rsyslogd")
    if rsyslogd is None:
        raise SystemExit("file_socket needs rsyslogd: apt-get install -y rsyslog")
    pin(peer_cpu)
    results: dict[str, Any] = {"scenario": "file -> socket (tcp), ours vs rsyslog"}
    with tempfile.TemporaryDirectory(prefix="bench-file-socket-") as tmp:
        work = Path(tmp)
        source = work / "app.log"
        write_lines(source, lines)

        sink = LineSink(lines)
        (work / "data").mkdir()
        config = work / "collector.yaml"
        config.write_text(
            f"""\
data_dir: {work / "data"}
api: {{enabled: false}}
inputs:
  app: {{type: file, include: ["{source}"], read_from: beginning}}
outputs:
  ship: {{type: socket, inputs: [app], address: "tcp://127.0.0.1:{sink.port}", codec: text}}
"""
        )
        ours = timed_run([sys.executable, "-m", "collector", "run", "-c", str(config)], sink, cpu, timeout=300)
        sink.close()

        sink = LineSink(lines)
        (work / "rsyslog").mkdir()
        conf = work / "rsyslog.conf"
        conf.write_text(RSYSLOG_CONF.format(workdir=work / "rsyslog", path=source, port=sink.port))
        check = subprocess.run([rsyslogd, "-N1", "-f", str(conf)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise SystemExit(f"rsyslog config rejected:\n{check.stderr}")
        theirs = timed_run([rsyslogd, "-n", "-f", str(conf), "-i", str(work / "rsyslog.pid")], sink, cpu, timeout=300)
        sink.close()
    ours_rate = ours["events"] / ours["seconds"]
    theirs_rate = theirs["events"] / theirs["seconds"]
    results.update(
        events=lines,
        ours_per_s=ours_rate,
        ours_cpu_seconds=ours["cpu_seconds"],
        rsyslog_per_s=theirs_rate,
        rsyslog_cpu_seconds=theirs["cpu_seconds"],
        ratio=ours_rate / theirs_rate,
        ratio_from_launch=theirs["seconds_from_launch"] / ours["seconds_from_launch"],
    )
    return results


def run_file_socket_buffers(lines: int, cpu: int, peer_cpu: int, pairs: int = 3) -> dict[str, Any]:
    """file -> socket (tcp) with a disk buffer beside the same pipeline with a memory buffer (both doing real
    work: tailing, framing, sending), interleaved `pairs` times; medians of first-to-last-line rates."""
    pin(peer_cpu)
    rates: dict[str, list[float]] = {"memory": [], "disk": []}
    cpu_per_m: dict[str, list[float]] = {"memory": [], "disk": []}
    with tempfile.TemporaryDirectory(prefix="bench-file-buffers-") as tmp:
        work = Path(tmp)
        # The source in a folder of its own: the file input's watcher must not see the buffer's segment writes.
        (work / "logs").mkdir()
        source = work / "logs" / "app.log"
        write_lines(source, lines)
        for round_ in range(pairs):
            for kind in ("memory", "disk"):
                sink = LineSink(lines)
                data = work / f"data-{kind}-{round_}"
                data.mkdir()
                buffer = "{type: disk, max_bytes: 2GiB}" if kind == "disk" else "{type: memory}"
                config = work / f"{kind}.yaml"
                config.write_text(
                    f"""\
data_dir: {data}
api: {{enabled: false}}
inputs:
  app: {{type: file, include: ["{source}"], read_from: beginning}}
outputs:
  ship: {{type: socket, inputs: [app], address: "tcp://127.0.0.1:{sink.port}", codec: text, buffer: {buffer}}}
"""
                )
                run = timed_run([sys.executable, "-m", "collector", "run", "-c", str(config)], sink, cpu, timeout=300)
                sink.close()
                rates[kind].append(run["events"] / run["seconds"])
                cpu_per_m[kind].append(run["cpu_seconds"] / (lines / 1e6))
    memory, disk = statistics.median(rates["memory"]), statistics.median(rates["disk"])
    return {
        "scenario": "file -> socket (tcp), disk buffer vs memory buffer",
        "events": lines,
        "memory_per_s": memory,
        "disk_per_s": disk,
        "memory_cpu_per_m": statistics.median(cpu_per_m["memory"]),
        "disk_cpu_per_m": statistics.median(cpu_per_m["disk"]),
        "disk_share": disk / memory,
    }


SCENARIOS: dict[str, Callable[[int, int, int], dict[str, Any]]] = {
    "syslog": run_syslog,
    "forward": run_forward,
    "file_socket": run_file_socket,
    "file_buffers": run_file_socket_buffers,
}
DEFAULT_EVENTS = {"syslog": 2_000_000, "forward": 2_000_000, "file_socket": 1_000_000, "file_buffers": 1_000_000}


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.receivers", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--messages", type=int, help="events per scenario (default: per scenario)")
    parser.add_argument("--cpu", type=int, default=0, help="CPU for the collector / rsyslog (default: 0)")
    parser.add_argument("--peer-cpu", type=int, default=1, help="CPU for senders and sinks (default: 1)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; available: {list(SCENARIOS)}")
    results = []
    for name in args.scenarios or list(SCENARIOS):
        events = args.messages or DEFAULT_EVENTS[name]
        result = SCENARIOS[name](events, args.cpu, args.peer_cpu)
        results.append(result)
        if not args.json:
            print_result(result)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def print_result(result: dict[str, Any]) -> None:
    if "disk_share" in result:
        print(
            f"{result['scenario']}: {result['events']:,} lines; memory {result['memory_per_s']:,.0f}/s "
            f"({result['memory_cpu_per_m']:.2f} CPU-s per M), disk {result['disk_per_s']:,.0f}/s "
            f"({result['disk_cpu_per_m']:.2f} CPU-s per M); disk = {100 * result['disk_share']:.0f} % of memory"
        )
        return
    if "ratio" in result:
        print(
            f"{result['scenario']}: {result['events']:,} lines; ours {result['ours_per_s']:,.0f}/s "
            f"({result['ours_cpu_seconds']:.1f} CPU s), rsyslog {result['rsyslog_per_s']:,.0f}/s "
            f"({result['rsyslog_cpu_seconds']:.1f} CPU s); ratio ours/rsyslog {result['ratio']:.2f} "
            f"(counting start-up: {result['ratio_from_launch']:.2f})"
        )
        return
    rate = result["events"] / result["seconds"]
    extra = f", acked {result['acked_records_per_s']:,.0f}/s at the client" if "acked_records_per_s" in result else ""
    print(
        f"{result['scenario']}: {result['events']:,} events in {result['seconds']:.2f}s = {rate:,.0f}/s "
        f"({result['cpu_seconds']:.2f} CPU s, peak RSS {result['peak_rss_kib'] / 1024:.0f} MiB){extra}"
    )


if __name__ == "__main__":
    sys.exit(main())
