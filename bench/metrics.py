"""Metric receiver benchmarks: the `statsd` and `emf` inputs on one core.

    python -m bench.metrics                               # every scenario, short
    python -m bench.metrics statsd_max --start-rate 200000 --step-seconds 3
    python -m bench.metrics statsd_paced --rate 100000 --seconds 30
    python -m bench.metrics emf --documents 500000

- `statsd_max`: StatsD lines packed 40 per UDP datagram (counters with tags, timers with a sample rate,
  gauges, sets over 200 series), sent paced at rising rates (each run a fresh input process, `--step-seconds`
  long) into the `statsd` input (parsed and aggregated; the aggregated points go to a no-op emit). Prints the
  highest offered rate with 0 lines lost and the input's CPU seconds per million lines at it (rates grow by
  half until a run loses a line, then four bisection steps). Target: >= 300,000 lines/s with 0 loss.
- `statsd_paced`: the same lines at a steady `--rate` lines/s for `--seconds`; prints lines lost (target:
  0 at 100,000 lines/s for 30 s) and the input's CPU share.
- `host_metrics`: `--collections` collections of every `host_metrics` group (plus one process matcher);
  prints the CPU time of one collection and what that is as a share of one core at a 10 s interval.
- `emf`: aws-embedded-metrics-shaped documents (two metrics, two dimensions, ~350 bytes) over one TCP
  connection into the `emf` input (validated, emitted as log records to a no-op emit). Target: >= 50,000
  documents/s.

The input runs in a fresh process pinned to `--cpu` (default 0) on uvloop, as `collector run` does; the
sender runs pinned to `--peer-cpu` (default 1). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
LINES_PER_DATAGRAM = 40


# ----------------------------------------------------------------- payloads


def statsd_datagrams(count: int = 500) -> list[bytes]:
    """`count` datagrams of LINES_PER_DATAGRAM varied lines over 200 series."""
    rnd = random.Random(7)
    out = []
    for _ in range(count):
        lines = []
        for _ in range(LINES_PER_DATAGRAM):
            kind = rnd.random()
            series = rnd.randrange(50)
            if kind < 0.4:
                lines.append(f"app.requests.{series}:1|c|#route:/api/{series % 7},status:200")
            elif kind < 0.8:
                lines.append(f"app.latency.{series}:{rnd.lognormvariate(3, 0.8):.3f}|ms|@0.5")
            elif kind < 0.9:
                lines.append(f"app.queue.{series}:{rnd.randrange(100)}|g")
            else:
                lines.append(f"app.users.{series % 5}:user{rnd.randrange(1000)}|s")
        out.append("\n".join(lines).encode())
    return out


def emf_document(i: int) -> bytes:
    doc = {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": "Bench",
                    "Dimensions": [["Service", "Operation"]],
                    "Metrics": [{"Name": "Latency", "Unit": "Milliseconds"}, {"Name": "Orders", "Unit": "Count"}],
                }
            ],
            "LogGroupName": "/bench",
        },
        "Service": "checkout",
        "Operation": f"op{i % 10}",
        "Latency": float(i % 250),
        "Orders": 1,
        "RequestId": f"{i:032x}",
    }
    return orjson.dumps(doc) + b"\n"


# ----------------------------------------------------------------- the input's process


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _worker(kind: str, port_file: Path, expected: int, idle: float) -> dict[str, Any]:
    from collector.api import HostFacts, InputContext
    from collector.events import Batch

    async def emit(batch: Batch) -> None:
        return None

    ctx = InputContext(
        "bench",
        logging.getLogger("bench"),
        Path(tempfile.mkdtemp()),
        HostFacts("bench"),
        emit,
        asyncio.Event(),
        try_emit=lambda batch: True,
    )
    marks: dict[str, float] = {}
    done: Any
    if kind == "statsd":
        from collector_plugins.inputs.statsd.input import StatsdConfig, StatsdInput

        inp: Any = StatsdInput(StatsdConfig(type="statsd", listen=["udp://127.0.0.1:0"], interval=1.0), ctx)
        handle = inp.listeners.datagram_handler

        def on_datagrams(datagrams: list[tuple[bytes, Any]]) -> None:
            marks.setdefault("first", time.perf_counter())
            handle(datagrams)
            marks["last"] = time.perf_counter()

        inp.listeners.datagram_handler = on_datagrams

        def done() -> int:
            return int(inp.parser.lines)
    else:
        from collector_plugins.inputs.emf.input import EmfConfig, EmfInput

        inp = EmfInput(EmfConfig(type="emf", listen=["tcp://127.0.0.1:0"]), ctx)
        process = inp.process

        def counted(lines: list[bytes]) -> Any:
            marks.setdefault("first", time.perf_counter())
            result = process(lines)
            marks["last"] = time.perf_counter()
            return result

        inp.process = counted

        def done() -> int:
            return int(inp.documents)

    await inp.start()
    task = asyncio.create_task(inp.run(ctx))
    await asyncio.sleep(0.05)
    port_file.write_text(str(inp.ports()[0]))
    cpu_start, seen, last_change = _cpu(), 0, time.monotonic()
    while done() < expected and time.monotonic() - last_change < idle:
        await asyncio.sleep(0.05)
        if done() != seen:
            seen, last_change = done(), time.monotonic()
    cpu = _cpu() - cpu_start
    ctx.stopping.set()
    await task
    await inp.stop()
    busy = marks.get("last", 0.0) - marks.get("first", 0.0)
    return {"handled": done(), "busy_seconds": busy, "cpu_seconds": cpu}


def worker_main(argv: list[str]) -> int:
    kind, port_file, expected, idle = argv[0], Path(argv[1]), int(argv[2]), float(argv[3])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(_worker(kind, port_file, expected, idle))
    print(json.dumps(result))
    return 0


# ----------------------------------------------------------------- the sender's side


def _start_worker(kind: str, expected: int, idle: float, cpu: int) -> tuple[subprocess.Popen[str], int]:
    port_file = Path(tempfile.mkdtemp()) / "port"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.metrics", "--worker", kind, str(port_file), str(expected), str(idle)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the {kind} worker did not start")
        time.sleep(0.02)
    return process, int(port_file.read_text())


def _finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=600)
    return dict(json.loads(out.strip().splitlines()[-1]))


def _paced(rate: int, seconds: float, cpu: int, peer_cpu: int) -> dict[str, Any]:
    """One fresh input process fed `rate` lines/s for `seconds`; what was sent, lost and what it cost."""
    payloads = statsd_datagrams()
    datagrams_per_second = rate / LINES_PER_DATAGRAM
    total = int(datagrams_per_second * seconds)
    process, port = _start_worker("statsd", total * LINES_PER_DATAGRAM, 2.0, cpu)
    os.sched_setaffinity(0, {peer_cpu})
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    target = ("127.0.0.1", port)
    start = time.perf_counter()
    for i in range(total):
        # Paced per datagram: a steady stream, as many applications produce, not one burst.
        due = start + i / datagrams_per_second
        while time.perf_counter() < due:
            if due - time.perf_counter() > 0.002:
                time.sleep(0.001)
        sock.sendto(payloads[i % len(payloads)], target)
    elapsed = time.perf_counter() - start
    sock.close()
    result = _finish(process)
    sent = total * LINES_PER_DATAGRAM
    return {
        "rate_offered": round(sent / elapsed),
        "seconds": round(elapsed, 1),
        "lines_sent": sent,
        "lines_lost": sent - result["handled"],
        "cpu_seconds": result["cpu_seconds"],
        "input_cpu_share": round(result["cpu_seconds"] / elapsed, 3),
        "cpu_seconds_per_million": round(result["cpu_seconds"] / max(result["handled"], 1) * 1e6, 3),
    }


def statsd_max(start_rate: int, seconds: float, cpu: int, peer_cpu: int) -> dict[str, Any]:
    """The highest offered rate the input takes with 0 loss.

    Paced runs of `seconds` each, in a fresh process: the rate grows by half until a run loses a line,
    then four bisection steps between the last clean rate and the first lossy one. Lines parsed per
    second of busy time would flatter the input: when the sender outruns it the kernel drops most
    datagrams and the input still looks busy and fast.
    """
    runs: list[dict[str, Any]] = []

    def attempt(rate: int) -> bool:
        run = _paced(rate, seconds, cpu, peer_cpu)
        runs.append(run)
        return bool(run["lines_lost"] == 0)

    clean: dict[str, Any] | None = None
    rate, lossy = start_rate, 0
    while lossy == 0 and rate <= 20_000_000:
        if attempt(rate):
            clean = runs[-1]
            rate = int(rate * 1.5)
        else:
            lossy = rate
    low = clean["rate_offered"] if clean else 0
    for _ in range(4 if lossy else 0):
        mid = (low + lossy) // 2
        if attempt(mid):
            clean, low = runs[-1], mid
        else:
            lossy = mid
    return {
        "scenario": "statsd_max",
        "max_rate_without_loss": clean["rate_offered"] if clean else 0,
        "cpu_seconds_per_million_lines": clean["cpu_seconds_per_million"] if clean else None,
        "first_lossy_rate": lossy or None,
        "seconds_per_run": seconds,
        "runs": [(r["rate_offered"], r["lines_lost"]) for r in runs],
        "target": ">= 300,000 lines/s with 0 loss",
    }


def statsd_paced(rate: int, seconds: float, cpu: int, peer_cpu: int) -> dict[str, Any]:
    run = _paced(rate, seconds, cpu, peer_cpu)
    return {"scenario": "statsd_paced", **run, "target": "0 lost at 100,000 lines/s for 30 s"}


def emf(documents: int, cpu: int, peer_cpu: int) -> dict[str, Any]:
    payload = b"".join(emf_document(i) for i in range(1000))
    rounds = max(1, documents // 1000)
    process, port = _start_worker("emf", rounds * 1000, 2.0, cpu)
    os.sched_setaffinity(0, {peer_cpu})
    with socket.create_connection(("127.0.0.1", port)) as conn:
        for _ in range(rounds):
            conn.sendall(payload)
    result = _finish(process)
    rate = result["handled"] / result["busy_seconds"] if result["busy_seconds"] else 0.0
    return {
        "scenario": "emf",
        "documents": result["handled"],
        "documents_per_second": round(rate),
        "target": ">= 50,000 documents/s",
    }


def host_metrics(collections: int, cpu: int) -> dict[str, Any]:
    from collector_plugins.inputs.host_metrics.collect import Collector, ProcessMatcher
    from collector_plugins.inputs.host_metrics.input import GROUPS, PSEUDO_FSTYPES

    os.sched_setaffinity(0, {cpu})
    collector = Collector(
        groups=[*GROUPS, "procstat"],
        ignore_fstypes=frozenset(PSEUDO_FSTYPES),
        ignore_devices=["loop*", "ram*"],
        ignore_interfaces=["lo"],
        processes=[ProcessMatcher("exe", "python3")],
    )
    collector.collect(time.time(), 10.0)
    started = time.thread_time()
    for _ in range(collections):
        points = collector.collect(time.time(), 10.0)
    per_collection = (time.thread_time() - started) / collections
    return {
        "scenario": "host_metrics",
        "points_per_collection": len(points),
        "processes_on_host": len(psutil_pids()),
        "cpu_ms_per_collection": round(per_collection * 1000, 2),
        "cpu_share_at_10s": f"{100 * per_collection / 10:.3f}%",
    }


def psutil_pids() -> list[int]:
    import psutil

    return list(psutil.pids())


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2:])
    parser = argparse.ArgumentParser(
        prog="python -m bench.metrics", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", default=["statsd_max", "statsd_paced", "emf", "host_metrics"])
    parser.add_argument("--start-rate", type=int, default=200_000, help="statsd_max: first rate tried, lines/s")
    parser.add_argument("--step-seconds", type=float, default=3.0, help="statsd_max: seconds per paced run")
    parser.add_argument("--rate", type=int, default=100_000, help="statsd_paced: lines per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="statsd_paced: how long (30 for the target)")
    parser.add_argument("--documents", type=int, default=300_000, help="emf: documents to send")
    parser.add_argument("--collections", type=int, default=50, help="host_metrics: collections to time")
    parser.add_argument("--cpu", type=int, default=0, help="CPU for the input's process")
    parser.add_argument("--peer-cpu", type=int, default=1, help="CPU for the sender")
    args = parser.parse_args()
    for name in args.scenarios:
        if name == "statsd_max":
            result = statsd_max(args.start_rate, args.step_seconds, args.cpu, args.peer_cpu)
        elif name == "statsd_paced":
            result = statsd_paced(args.rate, args.seconds, args.cpu, args.peer_cpu)
        elif name == "emf":
            result = emf(args.documents, args.cpu, args.peer_cpu)
        elif name == "host_metrics":
            result = host_metrics(args.collections, args.cpu)
        else:
            raise SystemExit(f"unknown scenario {name!r}: statsd_max, statsd_paced, emf, host_metrics")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
