"""Small state files (input positions, buffer ledgers) written atomically.

`save` writes a temporary file, fsyncs it, renames it over the old one and
fsyncs the directory: after a crash the file holds either the old or the new
content, never a mix. A write that fails (a full disk) removes its temporary
file, so it does not keep holding the space it took. `load` returns None for a
missing file and raises `CheckpointError` for one that cannot be read, so
callers choose between starting over and refusing to start.

State files are private data (`collector.private_files`): 0600 in a 0700
directory. A failed `save` is counted (`failures`, and the `on_failure`
callback the runtime wires to the component's
`collector_component_checkpoint_failures_total`) before the error reaches the
caller, which decides whether to retry.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from collector.private_files import open_private, private_dir


class CheckpointError(Exception):
    pass


class CheckpointFile:
    def __init__(self, path: Path, on_failure: Callable[[OSError], None] | None = None) -> None:
        self.path = path
        self.on_failure = on_failure
        self.failures = 0  # saves that raised

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
        """Replace the file (blocking); an OSError is counted, then raised."""
        try:
            private_dir(self.path.parent)
            replace_durably(self.path, orjson.dumps(value))
        except OSError as exc:
            self.failures += 1
            if self.on_failure is not None:
                self.on_failure(exc)
            raise


def replace_durably(path: Path, data: bytes) -> None:
    """Replace `path` (0600) with `data` atomically and durably (blocking); the temporary file is `<name>.tmp`."""
    tmp = path.with_name(path.name + ".tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
