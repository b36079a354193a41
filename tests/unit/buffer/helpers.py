"""Shared helpers for the disk buffer tests."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from collector.buffer.base import Unit
from collector.buffer.disk import DiskBuffer
from collector.buffer.segment import Frame, list_segments, open_reader, segment_name
from collector.events import LOGS, Batch

LOG = logging.getLogger("test.buffer.disk")


class Calls:
    """Records `on_drop` and `on_corrupt` calls."""

    def __init__(self) -> None:
        self.drops: list[tuple[str, int]] = []
        self.corrupt: list[tuple[str, int]] = []

    def drop(self, reason: str, events: int) -> None:
        self.drops.append((reason, events))

    def on_corrupt(self, reason: str, events: int) -> None:
        self.corrupt.append((reason, events))


def make_buffer(directory: Path, calls: Calls | None = None, **overrides: Any) -> DiskBuffer:
    calls = calls or Calls()
    options: dict[str, Any] = {
        "max_bytes": 1 << 20,
        "when_full": "block",
        "fsync": "never",
        "fsync_interval": 60.0,  # nothing happens in the background unless a test asks for it
        "segment_bytes": 4096,
    }
    options.update(overrides)
    return DiskBuffer(directory, on_drop=calls.drop, on_corrupt=calls.on_corrupt, log=LOG, **options)


def log_batch(first: int, n: int = 1, size: int = 40, ack: Any = None) -> Batch:
    """`n` log records numbered from `first` (field `seq`), each with a `size`-byte message."""
    records = [{"seq": i, "message": b"m" * size, "host": "node-1"} for i in range(first, first + n)]
    return Batch(LOGS, records, n * size, ack)


def seqs(units: list[Unit]) -> list[int]:
    return [r["seq"] for u in units for r in u.batch.records]


def drain(buf: DiskBuffer) -> list[Unit]:
    """Every unit available now, without waiting."""
    out = []
    while (unit := buf.pop_nowait()) is not None:
        out.append(unit)
    return out


def segment_files(directory: Path) -> list[Path]:
    return [directory / segment_name(i) for i in list_segments(directory)]


def frames(path: Path) -> list[Frame]:
    reader = open_reader(path)
    try:
        return [f for f in reader.scan(0, os.path.getsize(path)) if isinstance(f, Frame)]
    finally:
        reader.close()


def flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in segment_files(directory))
