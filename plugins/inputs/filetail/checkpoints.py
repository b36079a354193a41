"""The `file` input's checkpoint: per file identity, the offset acknowledged downstream.

Stored in the input's state directory (`data_dir/components/NAME/files.json`),
written atomically (`collector.checkpoint.CheckpointFile`: temporary file, fsync,
rename, fsync of the directory):

    {"version": 1,
     "files": [{"path": "/var/log/app.log", "dev": 2049, "ino": 1311,
                "fingerprint": {"bytes": 1024, "hash": "…"}, "offset": 52133,
                "rotated": false, "updated": 1764201600.5}]}

`offset` only ever comes from an acknowledgement (the data before it is durable in
every disk buffer it was routed to, or delivered): never from what was merely read.
`rotated` marks a file that no longer has its matched name (renamed away, or its
name now belongs to a newer file); after a restart it is looked for by device +
inode in the directory of `path`, so the lines written just before a rotation
that happened while the collector was down are still read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.checkpoint import CheckpointFile
from collector_plugins.inputs.filetail.identity import Fingerprint

FILE_NAME = "files.json"
VERSION = 1


@dataclass(frozen=True)
class FileCheckpoint:
    path: str
    dev: int
    ino: int
    fingerprint: Fingerprint
    offset: int
    rotated: bool = False
    updated: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dev": self.dev,
            "ino": self.ino,
            "fingerprint": self.fingerprint.to_json(),
            "offset": self.offset,
            "rotated": self.rotated,
            "updated": round(self.updated, 3),
        }

    @classmethod
    def from_json(cls, value: Any) -> FileCheckpoint:
        if not isinstance(value, dict):
            raise ValueError("entry is not an object")
        path, dev, ino, offset = value.get("path"), value.get("dev"), value.get("ino"), value.get("offset")
        if not isinstance(path, str) or not all(isinstance(v, int) and v >= 0 for v in (dev, ino, offset)):
            raise ValueError("entry needs a string `path` and non-negative integers `dev`, `ino`, `offset`")
        assert isinstance(dev, int) and isinstance(ino, int) and isinstance(offset, int)
        return cls(
            path,
            dev,
            ino,
            Fingerprint.from_json(value.get("fingerprint")),
            offset,
            bool(value.get("rotated", False)),
            float(value.get("updated", 0.0)),
        )


class CheckpointStore:
    def __init__(self, directory: Path, on_failure: Callable[[OSError], None] | None = None) -> None:
        self.file = CheckpointFile(directory / FILE_NAME, on_failure)

    @property
    def path(self) -> Path:
        return self.file.path

    def load(self) -> tuple[list[FileCheckpoint], int]:
        """The entries, and how many were unreadable (skipped). Raises `CheckpointError` for a broken file."""
        data = self.file.load()
        if data is None:
            return [], 0
        entries, bad = [], 0
        raw = data.get("files")
        for value in raw if isinstance(raw, list) else []:
            try:
                entries.append(FileCheckpoint.from_json(value))
            except ValueError:
                bad += 1
        return entries, bad

    def save(self, entries: list[FileCheckpoint]) -> None:
        self.file.save({"version": VERSION, "files": [e.to_json() for e in entries]})
