"""Small state files (input positions, buffer ledgers) written atomically.

`save` writes a temporary file, fsyncs it, renames it over the old one and
fsyncs the directory: after a crash the file holds either the old or the new
content, never a mix. `load` returns None for a missing file and raises
`CheckpointError` for one that cannot be read, so callers choose between
starting over and refusing to start.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson


class CheckpointError(Exception):
    pass


class CheckpointFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CheckpointError(f"{self.path} is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise CheckpointError(f"{self.path} does not hold a JSON object")
        return value

    def save(self, value: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        replace_durably(self.path, orjson.dumps(value), 0o640)


def replace_durably(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` atomically and durably (blocking); the temporary file is `<name>.tmp`."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
