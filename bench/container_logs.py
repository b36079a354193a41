"""Container log formats and parsing processors, in process, on one core: lines (records) per second.

    python -m bench.container_logs                   # 500,000 lines per case
    python -m bench.container_logs --lines 2000000 --cpu 0

- `docker` / `cri`: lines of ~200 bytes as the runtimes write them, one in 50
  split into a partial and a final part, stdout and stderr interleaved, parsed
  in chunks of 1,000 lines (what the file input hands a format).
- `parse_regex`, `parse_logfmt`, `parse_timestamp` (`rfc3339`, a strptime
  pattern): batches of 1,000 records.

This measures the parsing alone (the file input's reading, decoding and the
pipeline are measured by `python -m bench` and `python -m bench.receivers`).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from collector.api import ComponentContext, HostFacts
from collector.events import LOGS, Batch
from collector_plugins.inputs.file.container_formats import CriFormat, DockerFormat
from collector_plugins.inputs.file.line_formats import LineFormat
from collector_plugins.processors.parse_logfmt.processor import ParseLogfmt, ParseLogfmtConfig
from collector_plugins.processors.parse_regex.processor import ParseRegex, ParseRegexConfig
from collector_plugins.processors.parse_timestamp.processor import ParseTimestamp, ParseTimestampConfig

CHUNK = 1000
BASE_NS = 1_795_687_200_000_000_000


def stamp(i: int) -> str:
    seconds, micros = divmod(BASE_NS // 1000 + i * 37, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}123Z"


def message(i: int) -> str:
    return f'ts={stamp(i)} level=info msg="request handled" id={i:08d} path=/api/v1/items status=200 took=12ms ' + (
        "x" * 40
    )


def docker_lines(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        stream = "stderr" if i % 7 == 0 else "stdout"
        text = message(i)
        if i % 50 == 0:  # a long line: docker writes a partial part, then the rest
            out.append(orjson.dumps({"log": text[:60], "stream": stream, "time": stamp(i)}))
            text = text[60:]
        out.append(orjson.dumps({"log": text + "\n", "stream": stream, "time": stamp(i)}))
    return out[:count]


def cri_lines(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        stream = "stderr" if i % 7 == 0 else "stdout"
        text = message(i)
        if i % 50 == 0:
            out.append(f"{stamp(i)} {stream} P {text[:60]}".encode())
            text = text[60:]
        out.append(f"{stamp(i)} {stream} F {text}".encode())
    return out[:count]


def bench_format(fmt: LineFormat, lines: list[bytes]) -> tuple[float, int]:
    state = fmt.new_state()
    emitted = 0
    began = time.perf_counter()
    for i in range(0, len(lines), CHUNK):
        emitted += len(fmt.parse(state, lines[i : i + CHUNK], 0).records)
    return time.perf_counter() - began, emitted


def bench_processor(make: Callable[[], Any], records: list[dict[str, Any]]) -> float:
    processor = make()
    batches = [Batch(LOGS, [dict(r) for r in records[i : i + CHUNK]]) for i in range(0, len(records), CHUNK)]
    began = time.perf_counter()
    for batch in batches:
        processor.process(batch)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=500_000)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    n = args.lines
    for name, fmt, lines in (("docker", DockerFormat(), docker_lines(n)), ("cri", CriFormat(), cri_lines(n))):
        seconds, emitted = bench_format(fmt, lines)
        mib = sum(len(line) + 1 for line in lines) / 2**20
        print(f"{name:<24} {n / seconds:>12,.0f} lines/s {mib / seconds:>8.1f} MiB/s  ({emitted:,} records)")

    ctx = ComponentContext("bench", logging.getLogger("bench"), Path("/nonexistent"), HostFacts("bench"))
    base = {"type": "x", "inputs": ["src"]}
    records = [
        {"timestamp": 0.0, "message": message(i), "time": stamp(i), "local": stamp(i)[:23].replace("T", " ")}
        for i in range(n)
    ]
    cases: list[tuple[str, Callable[[], Any]]] = [
        (
            "parse_regex",
            lambda: ParseRegex(
                ParseRegexConfig(
                    **{**base, "type": "parse_regex"},
                    pattern=r"level=(?P<level>\w+) msg=\"(?P<msg>[^\"]*)\" id=(?P<id>\d+) path=(?P<path>\S+)",
                ),
                ctx,
            ),
        ),
        ("parse_logfmt", lambda: ParseLogfmt(ParseLogfmtConfig(**{**base, "type": "parse_logfmt"}), ctx)),
        (
            "parse_timestamp rfc3339",
            lambda: ParseTimestamp(
                ParseTimestampConfig(**{**base, "type": "parse_timestamp"}, field="time", formats=["rfc3339"]), ctx
            ),
        ),
        (
            "parse_timestamp strptime",
            lambda: ParseTimestamp(
                ParseTimestampConfig(
                    **{**base, "type": "parse_timestamp"}, field="local", formats=["%Y-%m-%d %H:%M:%S.%f"]
                ),
                ctx,
            ),
        ),
    ]
    for name, make in cases:
        seconds = bench_processor(make, records)
        print(f"{name:<24} {n / seconds:>12,.0f} records/s")


if __name__ == "__main__":
    main()
