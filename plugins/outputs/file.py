"""`file`: append records to a local file as JSON lines (or message text), with size rotation.

Each batch is encoded in one pass (`encoding.py`) and written with one
`os.write` on an `O_APPEND` descriptor: a batch is never split into per-record
writes, and lines from one batch are never interleaved with anyone else's.
Writing, rotating and the optional fsync run in a worker thread, so a slow disk
delays this output only, not the event loop every other component runs on.

Rotation by size, like logrotate's numbering: before a write that would take
the file past `max_bytes`, `path.{n-1}` becomes `path.{n}` ... `path` becomes
`path.1`, the oldest (`path.{max_files}`) is deleted, and a new `path` is
started. A batch larger than `max_bytes` is split at line boundaries across
files; only a single line longer than `max_bytes` makes a file exceed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import Output, OutputConfig
from collector.events import KINDS, Batch
from collector.log import kv
from collector.units import Size
from collector_plugins.outputs.encoding import encoder_for
from collector_plugins.templates import check_template, render_template

MIN_MAX_BYTES = 1024


class FileConfig(OutputConfig):
    type: Literal["file"] = Field(description="Appends records to a local file.", examples=["file"])
    path: str = Field(
        min_length=1,
        description=(
            "File to append to. May use host facts such as `{host}`; a relative path is relative to the "
            "data directory. Missing parent directories are created."
        ),
        examples=["/var/log/collector/{host}.jsonl", "out/events.jsonl"],
    )
    codec: Literal["json", "text"] = Field(
        default="json",
        description=(
            "`json`: one JSON object per line (raw byte messages decoded as UTF-8, metrics as objects); "
            "`text`: the `message` field only, or the JSON line for a record without one."
        ),
        examples=["json", "text"],
    )
    max_bytes: Size | None = Field(
        default=100 * 1024 * 1024,
        description="Rotate before the file would grow past this size; null never rotates.",
        examples=["100MiB", "1GiB", None],
    )
    max_files: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="Rotated files to keep (`path.1` is the newest); 0 keeps none.",
        examples=[5],
    )
    fsync: bool = Field(
        default=False,
        description="fsync the file after every batch (durable across power loss, much slower).",
        examples=[False, True],
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        check_template(value)
        if value.endswith(("/", os.sep)):
            raise ValueError(f"path {value!r} names a directory; give a file name")
        return value

    @field_validator("max_bytes")
    @classmethod
    def _check_max_bytes(cls, value: int | None) -> int | None:
        if value is not None and value < MIN_MAX_BYTES:
            raise ValueError(f"max_bytes must be at least {MIN_MAX_BYTES} bytes (or null to never rotate)")
        return value


def _open_for_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def split_lines(data: bytes, limit: int) -> list[bytes]:
    """Cut newline-terminated `data` into pieces of at most `limit` bytes at line ends (a longer line stays whole)."""
    pieces = []
    start, size = 0, len(data)
    while size - start > limit:
        cut = data.rfind(b"\n", start, start + limit)
        if cut < 0:  # a single line longer than the limit
            cut = data.find(b"\n", start + limit)
            if cut < 0:
                break
        pieces.append(data[start : cut + 1])
        start = cut + 1
    if start < size:
        pieces.append(data[start:])
    return pieces


class FileOutput(Output):
    type_name: ClassVar[str] = "file"
    description: ClassVar[str] = "Appends records to a local file as JSON lines or text, with size-based rotation."
    Config: ClassVar[type[FileConfig]] = FileConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)

    config: FileConfig

    def __init__(self, config: FileConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        try:
            rendered = render_template(config.path, ctx.host.as_dict())
        except ValueError as exc:
            raise ValueError(f"file output {ctx.name!r}: {exc}") from None
        path = Path(rendered).expanduser()
        self.path = path if path.is_absolute() else Path(ctx.data_dir) / path
        """The resolved file path."""
        self.events = 0
        self.bytes = 0
        """Encoded bytes written so far."""
        self.rotations = 0
        self._fd: int | None = None
        self._size = 0
        self._encode = encoder_for(config.codec)
        # write() and stop() may overlap during a shutdown; the descriptor is used by one thread at a time.
        self._lock = threading.RLock()

    async def start(self) -> None:
        await asyncio.to_thread(self._open)

    async def stop(self) -> None:
        await asyncio.to_thread(self._close)

    async def write(self, batch: Batch) -> None:
        if not batch.records:
            return
        data = self._encode(batch.records)
        await asyncio.to_thread(self.write_bytes, data)
        self.events += len(batch.records)

    # ----------------------------------------------------------------- synchronous file work (worker thread)

    def write_bytes(self, data: bytes) -> None:
        """Append encoded lines, rotating as needed. Blocking; runs in a worker thread."""
        with self._lock:
            if self._fd is None:
                self._open()
            limit = self.config.max_bytes
            if limit is None or self._size + len(data) <= limit:
                self._write(data)
            else:
                for piece in split_lines(data, limit):
                    if self._size and self._size + len(piece) > limit:
                        self._rotate()
                    self._write(piece)
            if self.config.fsync:
                assert self._fd is not None
                os.fsync(self._fd)

    def _write(self, data: bytes) -> None:
        fd = self._fd
        assert fd is not None
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        self._size += len(data)
        self.bytes += len(data)

    def _open(self) -> None:
        with self._lock:
            if self._fd is not None:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = _open_for_append(self.path)
            self._size = os.fstat(self._fd).st_size

    def _close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is None:
                return
            try:
                if self.config.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)

    def _rotated(self, n: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{n}")

    def _rotate(self) -> None:
        """path -> path.1 -> ... -> path.{max_files}; the oldest is deleted. Called with the lock held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            if self.config.fsync:
                os.fsync(fd)
            os.close(fd)
        keep = self.config.max_files
        if keep == 0:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        else:
            with contextlib.suppress(FileNotFoundError):
                self._rotated(keep).unlink()
            for n in range(keep - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self._rotated(n), self._rotated(n + 1))
            with contextlib.suppress(FileNotFoundError):  # removed behind our back: nothing to keep
                os.replace(self.path, self._rotated(1))
        self.rotations += 1
        self.log.info(
            "rotated output file",
            extra=kv(component=self.ctx.name, path=str(self.path), max_bytes=self.config.max_bytes, kept=keep),
        )
        self._fd = _open_for_append(self.path)
        self._size = 0
