"""A bounded, node-local index of recent trace data: segments and log lines by trace id.

Design note. The `trace_index` output writes here; `collector trace TRACE_ID`
reads. One SQLite database per output, `<data_dir>/trace_index/<output>.sqlite`
(sqlite3 is in the standard library; WAL mode lets the command read while the
collector writes):

    entries(trace TEXT, time REAL, kind TEXT, name TEXT, body TEXT)   + index on (trace, time)

- `trace` is the trace id in W3C form (32 lowercase hex), whatever form it came
  in, so either form finds the same rows;
- `kind` is `segment` (an X-Ray document; `body` is the document as received),
  `span` (an OTLP span record from the `otlp` input; `body` is the record as JSON) or
  `log` (`body` is the log record as JSON, an OTLP log record included);
- `time` is the segment's or span's `start_time`, or the log record's `timestamp`.

Bounded by `max_bytes`: after each write the file's size is checked, and past
the bound the oldest fifth of the rows is deleted and the space reclaimed
(`auto_vacuum=INCREMENTAL`), so the index always holds the most recent data
and the file stays near the bound. Every call here is blocking: callers run
them in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from collector.private_files import open_private, private_dir
from collector_plugins.common.record_encoding import json_default

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (trace TEXT NOT NULL, time REAL NOT NULL, kind TEXT NOT NULL,
                                    name TEXT NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_trace ON entries (trace, time);
"""
TRIM_FRACTION = 0.2  # of the rows, deleted when the file outgrows its bound


def index_path(data_dir: Path, output: str) -> Path:
    return data_dir / "trace_index" / f"{output}.sqlite"


def normalise_trace_id(value: str) -> str | None:
    """`1-5759e988-bd862e3fe1be46a994272793` or `5759e988bd862e3fe1be46a994272793` -> the 32-hex form."""
    text = value.strip().lower()
    if len(text) == 35 and text.startswith("1-") and text[10] == "-":
        text = text[2:10] + text[11:]
    if len(text) != 32:
        return None
    try:
        int(text, 16)
    except ValueError:
        return None
    return text


def xray_form(trace: str) -> str:
    return f"1-{trace[:8]}-{trace[8:]}"


@dataclass(frozen=True)
class Entry:
    trace: str
    time: float
    kind: str
    name: str
    body: str


def segment_entry(record: dict[str, Any]) -> Entry | None:
    """The index row of a trace record (from the `xray` input, or any record with `trace_id`)."""
    trace = record.get("trace_id")
    trace = normalise_trace_id(trace) if isinstance(trace, str) else None
    if trace is None:
        return None
    raw = record.get("raw")
    if isinstance(raw, bytes):
        body = raw.decode("utf-8", "replace")
    elif isinstance(raw, str):
        body = raw
    else:
        body = orjson.dumps(record, default=json_default).decode()
    start = record.get("start_time")
    time = float(start) if isinstance(start, int | float) else float(record.get("timestamp") or 0.0)
    return Entry(trace, time, "segment", str(record.get("name", "")), body)


def span_entry(record: dict[str, Any]) -> Entry | None:
    """The index row of an OTLP span record (`format: otlp`, W3C `trace_id`), so it shows with the segments."""
    trace = record.get("trace_id")
    trace = normalise_trace_id(trace) if isinstance(trace, str) else None
    if trace is None:
        return None
    start = record.get("start_time")
    time = float(start) if isinstance(start, int | float) else float(record.get("timestamp") or 0.0)
    body = orjson.dumps(record, default=json_default).decode()
    return Entry(trace, time, "span", str(record.get("name", "")), body)


def trace_entry(record: dict[str, Any]) -> Entry | None:
    """The index row of a record of the traces signal: an OTLP span or an X-Ray segment."""
    if record.get("format") == "otlp":
        return span_entry(record)
    return segment_entry(record)


def log_entry(record: dict[str, Any], fields: tuple[str, ...]) -> Entry | None:
    """The index row of a log record carrying a trace id in one of `fields` (either form)."""
    for field in fields:
        value = record.get(field)
        trace = normalise_trace_id(value) if isinstance(value, str) else None
        if trace is not None:
            break
    else:
        return None
    stamp = record.get("timestamp")
    time = float(stamp) if isinstance(stamp, int | float) else 0.0
    resource = record.get("resource")
    service = resource.get("service.name") if isinstance(resource, dict) else None
    name = str(record.get("file") or record.get("source") or service or "")
    return Entry(trace, time, "log", name, orjson.dumps(record, default=json_default).decode())


class TraceIndex:
    """The database of one `trace_index` output. Not thread-safe: one worker thread at a time."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.trimmed = 0
        """Rows deleted to keep the file within `max_bytes`."""
        # A private data file like the buffers' (0600 in a 0700 directory, whatever the umask); SQLite gives
        # its -wal and -shm files the database file's mode.
        private_dir(path.parent)
        os.close(open_private(path, os.O_RDWR | os.O_CREAT))
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # effective on a new file only
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # an index may lose its last writes on power loss
        self._db.executescript(SCHEMA)
        self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])

    def add(self, entries: list[Entry]) -> None:
        if not entries:
            return
        with self._transaction():
            self._db.executemany(
                "INSERT INTO entries (trace, time, kind, name, body) VALUES (?, ?, ?, ?, ?)",
                [(e.trace, e.time, e.kind, e.name, e.body) for e in entries],
            )
        self._trim()

    def size(self) -> int:
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return (pages - free) * self._page_size

    def _trim(self) -> None:
        while self.size() > self.max_bytes:
            rows = int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])
            if rows == 0:
                return
            cut = max(1, int(rows * TRIM_FRACTION))
            with self._transaction():
                self._db.execute(
                    "DELETE FROM entries WHERE rowid IN (SELECT rowid FROM entries ORDER BY rowid LIMIT ?)", (cut,)
                )
            self.trimmed += cut
            self._db.execute("PRAGMA incremental_vacuum")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


def lookup(path: Path, trace: str) -> list[Entry]:
    """Every entry of one trace (32-hex form) in an index file, in time order; read-only, safe while writing."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT trace, time, kind, name, body FROM entries WHERE trace = ? ORDER BY time, rowid", (trace,)
        ).fetchall()
    finally:
        db.close()
    return [Entry(*row) for row in rows]
