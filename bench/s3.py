"""How fast the `s3` output turns records into objects: partitioning, JSON lines, compression. No network.

    python -m bench.s3                          # gzip level 1 (the default), 16 MiB requests, ~5 s
    python -m bench.s3 --zlib                   # gzip through zlib even when python-isal is installed
    python -m bench.s3 --level 6 --seconds 10
    python -m bench.s3 --compression zstd
    python -m bench.s3 --format parquet --compression snappy

Builds one request of 200-byte log messages (varied text, so compression does
real work), then calls the output's `prepare_objects` on it again and again
with a new origin each time, as the driver would hand it requests: records
split by key prefix (hour partitions), encoded as JSON lines by this thread and
compressed chunk by chunk by the output's compression thread. Prints MiB/s of
input (the messages' bytes, what the driver counts as a request's bytes),
events/s, MiB/s of JSON lines, the compression ratio, and the CPU the process
used per second of wall time (1.0 = one core busy).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from collector.events import LOGS, Batch
from collector.testing import component_context
from collector_plugins.outputs.s3 import encoding as s3_encoding
from collector_plugins.outputs.s3.encoding import gzip_backend
from collector_plugins.outputs.s3.output import S3Config, S3Output

MIB = 1024 * 1024
MESSAGE_BYTES = 200


def log_lines(count: int, seed: int = 1) -> list[str]:
    """Application-log-like lines of exactly MESSAGE_BYTES: fixed layout, varying ids, paths and numbers."""
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9))) for _ in range(800)]
    levels = ["INFO"] * 8 + ["WARN", "ERROR"]
    lines = []
    for i in range(count):
        line = (
            f"2025-11-26T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z {rng.choice(levels)} [worker-{i % 16}] "
            f"req={rng.getrandbits(48):012x} user={rng.randint(1, 99_999)} "
            f"GET /api/v1/{rng.choice(words)}/{rng.choice(words)} status={rng.choice((200, 200, 200, 304, 404, 500))} "
            f"took={rng.random() * 250:.2f}ms "
        )
        while len(line) < MESSAGE_BYTES:
            line += rng.choice(words) + " "
        lines.append(line[:MESSAGE_BYTES])
    return lines


def request(batch_mib: float) -> Batch:
    count = int(batch_mib * MIB) // MESSAGE_BYTES
    texts = log_lines(count)  # all distinct: no compressor gets to find whole repeated lines
    start = 1764151200.0 + 3000  # 10:50 UTC: the request crosses into the next hour, so it makes two objects
    records = [
        {
            "timestamp": start + i * (1200 / count),
            "message": texts[i],
            "host": "ip-10-0-0-1",
            "file": "/var/log/app.log",
        }
        for i in range(count)
    ]
    return Batch(LOGS, records, nbytes=count * MESSAGE_BYTES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run (default 5)")
    parser.add_argument("--batch-mib", type=float, default=16.0, help="request size, MiB of messages (default 16)")
    parser.add_argument("--format", choices=["json", "parquet"], default="json")
    parser.add_argument("--compression", choices=["gzip", "zstd", "snappy", "none"], default="gzip")
    parser.add_argument("--level", type=int, default=None, help="compression level (default: the output's)")
    parser.add_argument("--zlib", action="store_true", help="gzip through zlib even if python-isal is installed")
    args = parser.parse_args()
    if args.zlib:
        s3_encoding._isal_zlib = lambda: None  # type: ignore[assignment]

    body: dict[str, Any] = {
        "type": "s3",
        "inputs": ["app"],
        "bucket": "bench-bucket",
        "region": "eu-west-1",
        "format": args.format,
        "compression": args.compression,
    }
    if args.level is not None:
        body["compression_level"] = args.level
    config = S3Config.model_validate(body)
    batch = request(args.batch_mib)
    with tempfile.TemporaryDirectory(prefix="bench-s3-") as data_dir:
        ctx = component_context("bench", Path(data_dir), host="ip-10-0-0-1")
        output = S3Output(config, ctx)
        output.prepare_objects(batch, "warm-up", set())  # threads started, code paths warm
        runs = 0
        raw = stored = objects = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        while time.perf_counter() - wall0 < args.seconds or runs == 0:
            for obj in output.prepare_objects(batch, f"{runs:011x}-1-0", set()):
                raw += obj.raw_bytes
                stored += len(obj.body)
                objects += 1
            runs += 1
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        asyncio.run(output.stop())
    events = runs * len(batch.records)
    level = config.compression_level if config.compression_level is not None else output.encoding.effective_level()
    engine = f" ({gzip_backend()})" if args.compression == "gzip" and args.format == "json" else ""
    print(
        f"s3 {args.format} {args.compression}{f' level {level}' if level else ''}{engine}: {runs} requests of "
        f"{len(batch.records):,} events ({args.batch_mib:g} MiB of messages), {objects} objects"
    )
    print(f"  input      {runs * batch.nbytes / MIB / wall:8.1f} MiB/s   {events / wall:12,.0f} events/s")
    print(f"  encoded    {raw / MIB / wall:8.1f} MiB/s   (JSON lines / Parquet before compression)")
    if args.format == "json":
        print(f"  ratio      {raw / max(1, stored):8.2f}   (JSON lines / stored)")
    print(f"  stored     {stored / max(1, runs * batch.nbytes):8.2f}   of the input's size")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  cpu        {cpu / wall:8.2f} cores busy   peak RSS {rss_mib:.0f} MiB")


if __name__ == "__main__":
    main()
