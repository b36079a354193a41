"""Run benchmark scenarios and print events/s, MiB/s and peak RSS.

    python -m bench                         # every scenario, 3 runs each, on CPU 0
    python -m bench generator_blackhole --events 5000000 --runs 5
    python -m bench --list

Each run is a fresh process pinned to one CPU (`--cpu`); the table shows the
median run and the best and worst events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

SCENARIOS = Path(__file__).parent / "scenarios"
DEFAULT_EVENTS = {
    "generator_blackhole": 5_000_000,
    "generator_add_fields_file": 2_000_000,
    "generator_disk_blackhole": 3_000_000,
}


def run_once(scenario: str, events: int, cpu: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-") as data_dir:
        env = dict(os.environ, BENCH_EVENTS=str(events), BENCH_DATA_DIR=data_dir)
        cmd = [sys.executable, "-m", "bench.worker", str(SCENARIOS / f"{scenario}.yaml")]

        def pin() -> None:
            os.sched_setaffinity(0, {cpu})

        out = subprocess.run(
            cmd,
            env=env,
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
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--events", type=int, help="events per run (default: per scenario)")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario (default: 3)")
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin each run to (default: 0)")
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    available = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    if args.list:
        print("\n".join(available))
        return 0
    chosen = args.scenarios or available
    unknown = [s for s in chosen if s not in available]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; available: {available}")

    results = []
    if not args.json:
        print(
            f"{'scenario':<28}{'events':>10}{'events/s (median)':>19}{'min..max':>22}{'MiB/s':>9}"
            f"{'CPU s':>8}{'peak RSS':>11}"
        )
    for scenario in chosen:
        events = args.events or DEFAULT_EVENTS.get(scenario, 1_000_000)
        runs = [run_once(scenario, events, args.cpu) for _ in range(args.runs)]
        rates = sorted(r["events"] / r["seconds"] for r in runs)
        median_run = sorted(runs, key=lambda r: r["events"] / r["seconds"])[len(runs) // 2]
        row = {
            "scenario": scenario,
            "events": int(median_run["events"]),
            "events_per_s": statistics.median(rates),
            "events_per_s_min": rates[0],
            "events_per_s_max": rates[-1],
            "mib_per_s": median_run["bytes"] / median_run["seconds"] / 2**20,
            "cpu_seconds": median_run["cpu_seconds"],
            "peak_rss_mib": max(r["peak_rss_kib"] for r in runs) / 1024,
        }
        results.append(row)
        if not args.json:
            print(
                f"{scenario:<28}{row['events']:>10}{row['events_per_s']:>19,.0f}"
                f"{f'{rates[0]:,.0f}..{rates[-1]:,.0f}':>22}{row['mib_per_s']:>9.1f}"
                f"{row['cpu_seconds']:>8.2f}{row['peak_rss_mib']:>8.1f} MiB"
            )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
