"""How fast a restarted collector starts delivering a large disk-buffer backlog.

    python -m bench.recovery              # a 1 GiB backlog
    python -m bench.recovery --gib 0.25

1. Fills an output's disk buffer with ~N GiB of 200-byte log records (2,000 per
   batch), the way a destination outage would leave it.
2. Starts `collector run` on a config whose `blackhole` output owns that buffer,
   and measures, from the moment the process is launched, when the first
   backlog record is delivered (read from /metrics) and how long draining the
   whole backlog takes. Prints the figures and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from collector.buffer.disk import DiskBuffer
from collector.events import LOGS, Batch
from collector.testing import free_port

CONFIG = """\
data_dir: {data_dir}
api: {{listen: 127.0.0.1:{port}}}
inputs:
  idle: {{type: internal_metrics, interval: 1h}}
outputs:
  sink:
    type: blackhole
    inputs: [idle]
    buffer: {{type: disk, max_bytes: {max_bytes}}}
"""


async def fill(directory: Path, target_bytes: int, max_bytes: int) -> int:
    buffer = DiskBuffer(
        directory,
        max_bytes=max_bytes,
        when_full="block",
        fsync="never",
        on_drop=lambda r, n: None,
        log=logging.getLogger("bench"),
    )
    await buffer.open()
    message = "x" * 200
    events = 0
    while buffer.metrics()["bytes"] < target_bytes:
        records = [{"timestamp": time.time(), "message": message, "sequence": events + i} for i in range(2000)]
        await buffer.push(Batch(LOGS, records, nbytes=200 * len(records)))
        events += len(records)
    await buffer.close()
    return events


def sink_figure(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + "{") and 'component="sink"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.recovery", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib", type=float, default=1.0, help="backlog size in GiB (default: 1)")
    args = parser.parse_args()
    target = int(args.gib * 2**30)
    with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
        data_dir = Path(tmp)
        max_bytes = target + 256 * 2**20
        t = time.perf_counter()
        events = asyncio.run(fill(data_dir / "buffers" / "sink", target, max_bytes))
        print(f"backlog: {events:,} events, {target / 2**30:.2f} GiB written in {time.perf_counter() - t:.1f}s")

        port = free_port()
        config = data_dir / "collector.yaml"
        config.write_text(CONFIG.format(data_dir=data_dir, port=port, max_bytes=max_bytes))
        launched = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "run", "-c", str(config)],
            stderr=subprocess.DEVNULL,
            env=dict(os.environ),
        )
        first = None
        try:
            while True:
                try:
                    sent = sink_figure(port, "collector_component_sent_events_total")
                except OSError:
                    sent = 0.0
                now = time.monotonic()
                if first is None and sent > 0:
                    first = now - launched
                if sent >= events:
                    break
                if proc.poll() is not None:
                    raise SystemExit(f"collector exited early with {proc.returncode}")
                time.sleep(0.005 if first is None else 0.1)
            drained = time.monotonic() - launched
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        assert first is not None
        print(
            f"first delivery {first:.2f}s after launch; backlog drained in {drained:.1f}s "
            f"({events / drained:,.0f} events/s, {target / 2**20 / drained:.0f} MiB/s); peak RSS {rss:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
