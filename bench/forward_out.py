"""Records/s from the `forward` output into our own `forward` input, the sender pinned to one CPU.

    python -m bench.forward_out                          # 1,000,000 records of 200 bytes, 3 runs
    python -m bench.forward_out --events 300000 --compress gzip --runs 1

The receiver is a `collector run` (forward input -> blackhole) on the other CPU when there is one; the
sender runs `generator -> forward` (`require_ack_response`, so every chunk counts only once the receiver
acknowledged it) in a fresh process pinned to `--cpu` with `bench.worker`: the clock runs from the
topology's start until every record was acknowledged. Prints records/s, MiB/s of message payload and the
sender's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

RECEIVER = """
data_dir: {data_dir}
api: {{enabled: false}}
inputs:
  fwd: {{type: forward, listen: "tcp://127.0.0.1:{port}"}}
outputs:
  sink: {{type: blackhole, inputs: [fwd]}}
"""

SENDER = """
data_dir: {data_dir}
api: {{enabled: false}}
inputs:
  gen:
    type: generator
    format: text
    message_bytes: {message_bytes}
    batch_size: 2000
    count: {events}
outputs:
  fwd:
    type: forward
    inputs: [gen]
    servers: ["127.0.0.1:{port}"]
    tag: bench
    compress: {compress}
    concurrency: {concurrency}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_once(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-forward-") as tmp:
        port = free_port()
        other = next((c for c in sorted(os.sched_getaffinity(0)) if c != args.cpu), None)
        receiver_config = Path(tmp) / "receiver.yaml"
        receiver_config.write_text(RECEIVER.format(data_dir=Path(tmp) / "rdata", port=port))
        collector = Path(sys.executable).with_name("collector")
        receiver = subprocess.Popen(
            [str(collector), "run", "-c", str(receiver_config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=(lambda: os.sched_setaffinity(0, {other})) if other is not None else None,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if time.monotonic() > deadline or receiver.poll() is not None:
                        raise SystemExit("the receiving collector did not start") from None
                    time.sleep(0.05)  # a start-up poll in a benchmark, not a test
            config = Path(tmp) / "sender.yaml"
            config.write_text(
                SENDER.format(
                    data_dir=Path(tmp) / "sdata",
                    message_bytes=args.message_bytes,
                    events=args.events,
                    port=port,
                    compress=args.compress,
                    concurrency=args.concurrency,
                )
            )
            out = subprocess.run(
                [sys.executable, "-m", "bench.worker", str(config)],
                capture_output=True,
                text=True,
                check=False,
                preexec_fn=lambda: os.sched_setaffinity(0, {args.cpu}),
                cwd=ROOT,
            )
            if out.returncode != 0:
                raise SystemExit(f"run failed:\n{out.stderr}")
            result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
            return result
        finally:
            receiver.terminate()
            receiver.wait(timeout=20)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.forward_out", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--message-bytes", type=int, default=200)
    parser.add_argument("--compress", default="none", choices=["none", "gzip"])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="CPU the sender is pinned to (default: 0)")
    args = parser.parse_args()
    print(f"{'run':>4}{'records':>10}{'records/s':>12}{'MiB/s':>8}{'CPU s':>8}{'peak RSS':>12}")
    rates = []
    for run in range(1, args.runs + 1):
        r = run_once(args)
        rate = r["events"] / r["seconds"]
        rates.append(rate)
        print(
            f"{run:>4}{int(r['events']):>10}{rate:>12,.0f}{r['bytes'] / r['seconds'] / 2**20:>8.1f}"
            f"{r['cpu_seconds']:>8.2f}{r['peak_rss_kib'] / 1024:>8.1f} MiB"
        )
    print(f"median {sorted(rates)[len(rates) // 2]:,.0f} records/s (compress {args.compress})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
