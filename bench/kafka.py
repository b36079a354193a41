"""Records/s from the collector to a real Kafka API (noida-db), the collector pinned to one CPU.

    python -m bench.kafka                               # 1,000,000 records of 200 bytes, lz4, 3 runs
    python -m bench.kafka --events 300000 --compression zstd --runs 1

Each run starts a fresh noida-db Kafka broker (on the other CPU when there is one), then runs
`generator -> kafka` (the installed plugins, the real output driver, a memory buffer) in a fresh process
pinned to `--cpu` with `bench.worker`: the clock runs from the topology's start until every record was
acknowledged by the broker. The topic's end offsets are then read back and must hold every record.
Prints records/s, MiB/s of message payload and the collector's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import noida_db

BINARY = Path(noida_db.__file__).with_name("noida-db")
ROOT = Path(__file__).resolve().parent.parent

CONFIG = """
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
  kafka:
    type: kafka
    inputs: [gen]
    bootstrap_servers: ["127.0.0.1:{port}"]
    topic: bench
    compression: {compression}
    format: {format}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(data_dir: Path, port: int, cpu: int | None) -> subprocess.Popen[bytes]:
    def pin() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    process = subprocess.Popen(
        [
            str(BINARY),
            "start",
            "--only",
            "kafka",
            "--host",
            "127.0.0.1",
            "--kafka-port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=pin,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.05)  # a start-up poll in a benchmark, not a test
    process.kill()
    raise SystemExit("noida-db did not start")


async def topic_records(port: int, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        if not partitions:
            await consumer.topics()
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        ends = await consumer.end_offsets(partitions)
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


def run_once(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as tmp:
        port = free_port()
        other = next((c for c in sorted(os.sched_getaffinity(0)) if c != args.cpu), None)
        broker = start_broker(Path(tmp) / "kafka", port, other)
        try:
            config = Path(tmp) / "collector.yaml"
            config.write_text(
                CONFIG.format(
                    data_dir=Path(tmp) / "data",
                    message_bytes=args.message_bytes,
                    events=args.events,
                    port=port,
                    compression=args.compression,
                    format=args.format,
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
            result["in_topic"] = asyncio.run(topic_records(port, "bench"))
            return result
        finally:
            broker.terminate()
            broker.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.kafka", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--message-bytes", type=int, default=200)
    parser.add_argument("--compression", default="lz4", choices=["none", "gzip", "snappy", "lz4", "zstd"])
    parser.add_argument("--format", default="raw", choices=["raw", "json"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=0, help="CPU the collector is pinned to (default: 0)")
    args = parser.parse_args()
    print(f"{'run':>4}{'records':>10}{'records/s':>12}{'MiB/s':>8}{'CPU s':>8}{'peak RSS':>12}{'in topic':>10}")
    rates = []
    for run in range(1, args.runs + 1):
        r = run_once(args)
        rate = r["events"] / r["seconds"]
        rates.append(rate)
        print(
            f"{run:>4}{int(r['events']):>10}{rate:>12,.0f}{r['bytes'] / r['seconds'] / 2**20:>8.1f}"
            f"{r['cpu_seconds']:>8.2f}{r['peak_rss_kib'] / 1024:>8.1f} MiB{int(r['in_topic']):>10}"
        )
        if r["in_topic"] < r["events"]:
            print(f"     LOST: the topic holds {int(r['in_topic'])} of {int(r['events'])} records")
    print(f"median {sorted(rates)[len(rates) // 2]:,.0f} records/s ({args.compression}, {args.format})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
