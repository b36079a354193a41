"""How fast the `file` input reads: 200-byte lines from a file, on one core.

    python -m bench.file_input                      # 2,000,000 lines, both scenarios, CPU 0
    python -m bench.file_input --lines 500000 --scenario blackhole --runs 3

1. Writes an input file of N lines of 200 bytes (plus the newline), each numbered.
2. For each scenario, runs the pipeline in a fresh process pinned to one CPU, from
   applying the topology until the output has delivered every line, and prints
   lines/s, MiB/s (of line payload), CPU seconds and the process's peak RSS:

   - `blackhole`: `file` input -> `blackhole` output (memory buffer): the reading path;
   - `file`: `file` input -> `file` output (JSON lines) through a disk buffer (fsync
     every second): the durable local path.

Targets (docs/benchmarks.md): blackhole >= 400,000 lines/s, file >= 200,000 lines/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LINE_BYTES = 200
SCENARIOS = {
    "blackhole": """\
outputs:
  sink:
    type: blackhole
    inputs: [logs]
""",
    "file": """\
outputs:
  sink:
    type: file
    inputs: [logs]
    path: {data}/out/lines.jsonl
    max_bytes: 1GiB
    max_files: 1
    buffer: {{type: disk, max_bytes: 4GiB, fsync: interval, fsync_interval: 1s}}
""",
}
TARGETS = {"blackhole": 400_000, "file": 200_000}


def write_input(path: Path, lines: int) -> None:
    """N numbered lines of exactly LINE_BYTES bytes each (before the newline)."""
    pad = "x" * LINE_BYTES
    with path.open("w", buffering=4 * 1024 * 1024) as f:
        step = 10_000
        for base in range(0, lines, step):
            chunk = []
            for i in range(base, min(lines, base + step)):
                head = f"2026-11-27T10:00:00.000Z INFO [worker-3] checkout.Service - order {i} placed "
                chunk.append((head + pad)[:LINE_BYTES] + "\n")
            f.write("".join(chunk))


def config_text(scenario: str, input_path: Path, data: Path) -> str:
    return (
        f"data_dir: {data}\napi: {{enabled: false}}\n"
        f"inputs:\n  logs:\n    type: file\n    include: [{input_path}]\n" + SCENARIOS[scenario].format(data=data)
    )


# ----------------------------------------------------------------- the measured process


async def measure(config_path: str, lines: int) -> dict[str, float]:
    from collector.api import HostFacts
    from collector.config import load_config
    from collector.runtime import Runtime

    config = load_config(config_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(config.data_dir, HostFacts(socket.gethostname()))
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await runtime.apply(config.graph)
    sink = runtime.stats["sink"]
    while sink.sent_events < lines:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    drained = await runtime.shutdown(60)
    return {
        "lines": sink.sent_events,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "drained": drained,
    }


def worker(config_path: str, lines: int) -> None:
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        print(json.dumps(runner.run(measure(config_path, lines))))


# ----------------------------------------------------------------- the driver


def run_once(scenario: str, input_path: Path, lines: int, cpu: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-file-input-") as tmp:
        data = Path(tmp)
        config = data / "collector.yaml"
        config.write_text(config_text(scenario, input_path, data / "data"))

        def pin() -> None:
            os.sched_setaffinity(0, {cpu})

        out = subprocess.run(
            [sys.executable, "-m", "bench.file_input", "--worker", str(config), "--lines", str(lines)],
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=pin,
            cwd=Path(__file__).parent.parent,
        )
        if out.returncode != 0:
            raise SystemExit(f"{scenario} failed:\n{out.stderr}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.file_input", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=2_000_000, help="lines in the input file (default: 2000000)")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario; the median is shown (default: 1)")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin each run to (default: 0)")
    parser.add_argument("--worker", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.lines)
        return 0
    scenarios = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    with tempfile.TemporaryDirectory(prefix="bench-file-input-src-") as src:
        input_path = Path(src) / "input.log"
        t = time.perf_counter()
        write_input(input_path, args.lines)
        size = input_path.stat().st_size
        took = time.perf_counter() - t
        print(f"input: {args.lines:,} lines of {LINE_BYTES} B ({size / 2**20:.0f} MiB), written in {took:.1f}s")
        failed = False
        for scenario in scenarios:
            results = [run_once(scenario, input_path, args.lines, args.cpu) for _ in range(args.runs)]
            rates = [r["lines"] / r["seconds"] for r in results]
            median = sorted(results, key=lambda r: r["lines"] / r["seconds"])[len(results) // 2]
            rate = statistics.median(rates)
            mib = median["lines"] * LINE_BYTES / 2**20 / median["seconds"]
            ok = rate >= TARGETS[scenario]
            failed |= not ok
            print(
                f"file -> {scenario:<9} {rate:>10,.0f} lines/s  {mib:6.1f} MiB/s  "
                f"cpu {median['cpu_seconds']:.1f}s  peak RSS {median['peak_rss_kib'] / 1024:.0f} MiB  "
                f"(target {TARGETS[scenario]:,}: {'ok' if ok else 'BELOW'})"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
