"""`file`: append records to local files as JSON lines (or message text), with size rotation.

Each batch is encoded in one pass (`common/record_encoding.py`) per file it goes to and
written with one `os.write` per file on an `O_APPEND` descriptor: a batch is
never split into per-record writes, and lines from one batch are never
interleaved with anyone else's. Writing, rotating and the optional fsync run
in a worker thread, so a slow disk delays this output only, not the event loop
every other component runs on.

`path` may name record fields and date parts (`out/{app}/{%Y}-{%m}-{%d}.jsonl`):
records go to the file their values render, escaped so that no value can
leave the output's directory (`paths.py`). At most `max_open_files` files
are open at once; the least recently written is closed to open another. A
group of records whose file cannot be opened or written does not cost the
other groups of the batch: the driver retries it alone, or dead-letters it if
its name is longer than the file system allows. Created files are 0600 and
directories 0700, whatever the umask.

A file is only ever appended whole lines. A write that fails partway (a full
disk answers a short count, then ENOSPC) is cut off the file again before the
driver retries the batch. A crash (kill -9, power loss) can still cut the last
write short: when a file that does not end in a newline is opened, a newline is
written first, so the cut piece stays a line of its own and the records,
delivered again from the buffer, are not glued to it.

Rotation by size, like logrotate's numbering: before a write that would take
the file past `max_bytes`, `path.{n-1}` becomes `path.{n}` ... `path` becomes
`path.1`, the oldest (`path.{max_files}`) is deleted, and a new `path` is
started. A batch larger than `max_bytes` is split at line boundaries across
files; only a single line longer than `max_bytes` makes a file exceed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.appending import append_whole
from collector.events import KINDS, Batch
from collector.log import kv
from collector.send_result import Outcome, RetryableError, SendResult
from collector.units import Size
from collector_plugins.common.record_encoding import encoder_for
from collector_plugins.outputs.file.paths import (
    FilePaths,
    check_path_template,
    last_byte,
    make_private_dirs,
    open_private_append,
)

MIN_MAX_BYTES = 1024


class FileConfig(OutputConfig):
    type: Literal["file"] = Field(description="Appends records to a local file.", examples=["file"])
    path: str = Field(
        min_length=1,
        description=(
            "File to append to: a record template with host facts (`{host}`), record fields (`{app}`, "
            "`{kubernetes.namespace}`) and date parts of the record's time (`{%Y}` `{%m}` `{%d}` `{%H}`); values "
            "are escaped so they never leave the directory. A relative path is relative to the data directory. "
            "Missing directories are created (mode 0700; files 0600)."
        ),
        examples=["/var/log/collector/{host}.jsonl", "out/events.jsonl", "out/{app}/{%Y}-{%m}-{%d}.jsonl"],
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
    max_open_files: int = Field(
        default=100,
        ge=1,
        le=10_000,
        description="With record fields in `path`: most files open at once; the least recently written is closed.",
        examples=[100],
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return check_path_template(value)

    @field_validator("max_bytes")
    @classmethod
    def _check_max_bytes(cls, value: int | None) -> int | None:
        if value is not None and value < MIN_MAX_BYTES:
            raise ValueError(f"max_bytes must be at least {MIN_MAX_BYTES} bytes (or null to never rotate)")
        return value


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


class _OpenFile:
    __slots__ = ("check_end", "fd", "size")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.check_end = True
        """The file may end in a partial line (just opened, or a failed write not taken back): look first."""


class FileOutput(Output):
    type_name: ClassVar[str] = "file"
    description: ClassVar[str] = "Appends records to local files as JSON lines or text, with size-based rotation."
    Config: ClassVar[type[FileConfig]] = FileConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)

    config: FileConfig

    def __init__(self, config: FileConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.paths = FilePaths(config.path, ctx.host.as_dict(), Path(ctx.data_dir))
        self.path: Path | None = self.paths.static
        """The file, when `path` names no record field or date (else None: one file per rendered path)."""
        self.events = 0
        self.bytes = 0
        """Encoded bytes written so far."""
        self.rotations = 0
        self.files_opened = 0
        self.files_closed = 0
        """Files closed to stay under `max_open_files`."""
        self.torn_lines_ended = 0
        """Files found ending in a partial line (an earlier crash mid-write) and given a newline before appending."""
        self._files: OrderedDict[Path, _OpenFile] = OrderedDict()  # least recently written first
        self._encode = encoder_for(config.codec)
        # write() and stop() may overlap during a shutdown; the descriptors are used by one thread at a time.
        self._lock = threading.RLock()

    def counters(self) -> dict[str, float]:
        return {
            "events": self.events,
            "bytes": self.bytes,
            "rotations": self.rotations,
            "open_files": len(self._files),
            "files_opened": self.files_opened,
            "torn_lines_ended": self.torn_lines_ended,
        }

    async def start(self) -> None:
        if self.path is not None:
            await asyncio.to_thread(self._file, self.path)

    async def stop(self) -> None:
        await asyncio.to_thread(self._close_all)

    async def write(self, batch: Batch) -> None:
        """Write the whole batch or raise (for callers without the driver)."""
        result = await self.send(batch)
        if result is not None and result.per_record is not None:
            reasons = result.record_reasons or [result.reason] * len(result.per_record)
            failed = [r for r, o in zip(reasons, result.per_record, strict=True) if o is not Outcome.OK]
            if failed:
                raise OSError(f"{len(failed)} records were not written: {failed[0]}")

    async def send(self, batch: Batch) -> SendResult | None:
        records = batch.records
        if not records:
            return None
        if self.path is not None:
            data = self._encode(records)
            await asyncio.to_thread(self.write_bytes, data, self.path)  # raises: the driver retries
            self.events += len(records)
            return None
        groups = self.paths.group(records)
        encoded = [
            (Path(path), indices, self._encode([records[i] for i in indices])) for path, indices in groups.items()
        ]
        failures = await asyncio.to_thread(self._write_groups, encoded)
        self.events += len(records) - sum(len(encoded[g][1]) for g in failures)
        if not failures:
            return None
        outcomes = [Outcome.OK] * len(records)
        reasons = [""] * len(records)
        for group, (outcome, reason) in failures.items():
            for i in encoded[group][1]:
                outcomes[i], reasons[i] = outcome, reason
        if len(failures) == len(encoded) and all(o is Outcome.RETRY for o, _ in failures.values()):
            raise RetryableError(next(iter(failures.values()))[1])
        return SendResult.partial(outcomes, reasons)

    # ----------------------------------------------------------------- synchronous file work (worker thread)

    def _write_groups(self, groups: list[tuple[Path, list[int], bytes]]) -> dict[int, tuple[Outcome, str]]:
        """Write each group to its file; the groups that failed, with their outcome. Blocking."""
        failures: dict[int, tuple[Outcome, str]] = {}
        for n, (path, _, data) in enumerate(groups):
            try:
                self.write_bytes(data, path)
            except OSError as exc:
                reason = f"{errno.errorcode.get(exc.errno or 0, type(exc).__name__)}: {exc.strerror or exc}"
                # A name the file system refuses stays refused; anything else (disk full, permissions) may pass.
                permanent = exc.errno in (errno.ENAMETOOLONG, errno.EILSEQ)
                failures[n] = (Outcome.DROP if permanent else Outcome.RETRY, reason)
        return failures

    def write_bytes(self, data: bytes, path: Path) -> None:
        """Append encoded lines to `path`, rotating as needed. Blocking; runs in a worker thread."""
        with self._lock:
            file = self._file(path)
            if file.check_end:
                self._end_torn_line(path, file)
            limit = self.config.max_bytes
            if limit is None or file.size + len(data) <= limit:
                self._write(file, data)
            else:
                for piece in split_lines(data, limit):
                    if file.size and file.size + len(piece) > limit:
                        file = self._rotate(path)
                    self._write(file, piece)
            if self.config.fsync:
                os.fsync(file.fd)

    def _write(self, file: _OpenFile, data: bytes) -> None:
        try:
            append_whole(file.fd, data)
        except OSError:
            # What was written is cut off again if it can be; if not, the next write looks at the file's end.
            file.check_end = True
            with contextlib.suppress(OSError):
                file.size = os.fstat(file.fd).st_size
            raise
        file.size += len(data)
        self.bytes += len(data)

    def _file(self, path: Path) -> _OpenFile:
        """The open file for `path` (opened now if needed, closing the least recently written past the cap)."""
        with self._lock:
            file = self._files.get(path)
            if file is not None:
                self._files.move_to_end(path)
                return file
            make_private_dirs(path.parent)
            fd = open_private_append(path)
            file = self._files[path] = _OpenFile(fd, os.fstat(fd).st_size)
            self.files_opened += 1
            while len(self._files) > self.config.max_open_files:
                _, oldest = self._files.popitem(last=False)
                self._close(oldest)
                self.files_closed += 1
            return file

    def _end_torn_line(self, path: Path, file: _OpenFile) -> None:
        """Give a file whose last line was cut short (a crash mid-write) its newline before anything is appended."""
        last = last_byte(path, file.fd)
        torn = last is not None and last not in (b"", b"\n")
        if torn:
            append_whole(file.fd, b"\n")
            file.size += 1
            self.torn_lines_ended += 1
            self.log.warning(
                "output file ended in a partial line (cut short by a crash or a failed write); ended it first",
                extra=kv(component=self.ctx.name, path=str(path)),
            )
        file.check_end = False

    def _close(self, file: _OpenFile) -> None:
        try:
            if self.config.fsync:
                os.fsync(file.fd)
        finally:
            os.close(file.fd)

    def _close_all(self) -> None:
        with self._lock:
            while self._files:
                _, file = self._files.popitem(last=False)
                self._close(file)

    def _rotate(self, path: Path) -> _OpenFile:
        """path -> path.1 -> ... -> path.{max_files}; the oldest is deleted. Called with the lock held."""
        file = self._files.pop(path, None)
        if file is not None:
            self._close(file)
        keep = self.config.max_files
        if keep == 0:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        else:
            with contextlib.suppress(FileNotFoundError):
                _rotated(path, keep).unlink()
            for n in range(keep - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(_rotated(path, n), _rotated(path, n + 1))
            with contextlib.suppress(FileNotFoundError):  # removed behind our back: nothing to keep
                os.replace(path, _rotated(path, 1))
        self.rotations += 1
        self.log.info(
            "rotated output file",
            extra=kv(component=self.ctx.name, path=str(path), max_bytes=self.config.max_bytes, kept=keep),
        )
        return self._file(path)


def _rotated(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")
