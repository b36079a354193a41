"""Dead letters: records a destination rejected for good, kept per output for inspection and replay.

Layout: `<data_dir>/dead_letter/<output>/<UTC timestamp>-<pid>.jsonl`, one JSON
object per line: `{"time", "output", "kind", "reason", "record"}`. Values that
JSON cannot carry as they are round-trip through markers: bytes as
`{"$bytes": "<base64>"}`, a metric as `{"$metric": {...}}`. Files are 0600 in
0700 directories (`collector.private_files`): they hold the records themselves. Each output's dead
letters are bounded by `dead_letter.max_bytes`; past it records are dropped and
counted (`dead_letter_full`), never silently.

`collector dlq list|show|replay` reads these files (see `collector/dlq_cli.py`).

Lines are appended whole with `os.write`; a write that fails partway (a full
disk) is cut off again, so a failed write leaves no half line and its records
are counted as not kept. A kill -9 can still cut the last line of a file short:
readers pass over a line that does not parse (counted, never fatal), and each
process appends to a file of its own, so it is never glued to the next line.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from collector.appending import append_whole
from collector.events import Metric
from collector.private_files import open_private, private_dir


def _default(obj: Any) -> Any:
    if isinstance(obj, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(obj)).decode()}
    if isinstance(obj, Metric):
        return {"$metric": obj.to_dict()}
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    return str(obj)


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            if "$bytes" in value:
                return base64.b64decode(value["$bytes"])
            if "$metric" in value:
                m = value["$metric"]
                return Metric(
                    m["name"],
                    m["type"],
                    m["value"],
                    m.get("tags"),
                    m.get("timestamp", 0.0),
                    m.get("unit"),
                    m.get("interval", 0.0),
                    m.get("source"),
                )
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def dlq_dir(data_dir: Path, output: str) -> Path:
    return data_dir / "dead_letter" / output


class DeadLetterQueue:
    def __init__(self, directory: Path, output: str, max_bytes: int) -> None:
        self.directory = directory
        self.output = output
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._size: int | None = None

    def size(self) -> int:
        if self._size is None:
            self._size = sum(p.stat().st_size for p in self.directory.glob("*.jsonl")) if self.directory.exists() else 0
        return self._size

    def write(self, kind: str, records: list[Any], reasons: list[str]) -> int:
        """Append records with their reasons; returns how many did not fit (the caller counts them)."""
        now = time.time()
        lines = [
            orjson.dumps(
                {"time": now, "output": self.output, "kind": kind, "reason": reason, "record": record},
                default=_default,
                option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS,
            )
            for record, reason in zip(records, reasons, strict=True)
        ]
        room = self.max_bytes - self.size()
        kept = 0
        for line in lines:
            if len(line) > room:
                break
            room -= len(line)
            kept += 1
        if kept:
            data = b"".join(lines[:kept])
            if self._fd is None:
                private_dir(self.directory)
                name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}.jsonl"
                fd = open_private(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
                # Held while this process appends: `collector dlq replay` skips a locked file.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
            append_whole(self._fd, data)
            self._size = self.size() + len(data)
        return len(lines) - kept

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def read_dead_letters(path: Path, unreadable: list[bytes] | None = None) -> Iterator[dict[str, Any]]:
    """Entries of one dead-letter file with their records restored (bytes, metrics).

    A line that does not parse as an entry (cut short by a kill -9, or edited by hand) is passed over and,
    when `unreadable` is given, appended to it: one bad line never hides the others.
    """
    with path.open("rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                entry = orjson.loads(line)
                entry["record"] = _restore(entry["record"])
                if not isinstance(entry["kind"], str):
                    raise TypeError("kind is not a string")
            except (orjson.JSONDecodeError, binascii.Error, KeyError, TypeError, ValueError):
                if unreadable is not None:
                    unreadable.append(line)
                continue
            yield entry


def is_locked(path: Path) -> bool:
    """True while a running collector is still appending to this dead-letter file."""
    with path.open("rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    return False


def dead_letter_files(data_dir: Path, output: str) -> list[Path]:
    directory = dlq_dir(data_dir, output)
    return sorted(directory.glob("*.jsonl")) if directory.exists() else []
