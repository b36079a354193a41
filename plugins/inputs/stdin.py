"""`stdin`: newline-delimited log lines from standard input.

Reading is done in large chunks (64 KiB): a pipe, FIFO, socket or terminal is
watched by the event loop (`connect_read_pipe`, non-blocking); a regular file
(`collector run < app.log`) or a device the loop cannot poll (`/dev/null`) is
read in a worker thread (reads of such sources do not block for long).

A chunk is split once: the complete lines become records, decoded in one call
per chunk; the bytes after the last newline wait for the next chunk (and are
flushed at end of input). A line longer than `max_line_bytes` is cut at that
length, marked `truncated: true`, and the rest of it, up to its newline, is
discarded, so a stream without newlines cannot grow memory without bound.

Lines accumulate into a batch that is emitted when it holds `batch_size` lines
or when its oldest line has waited `batch_timeout`. While the downstream channel
is full, lines pile up until `batch_size * 4` and reading then pauses, which
makes the writer block: stdin gets backpressure like any other source.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import fcntl
import os
import stat
import sys
import time
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import ComponentContext, Input, InputConfig, InputContext
from collector.events import LOGS, Batch
from collector.log import kv
from collector.units import Duration, Size

READ_SIZE = 64 * 1024
MAX_BATCH_SIZE = 100_000


class StdinConfig(InputConfig):
    type: Literal["stdin"] = Field(description="Reads log lines from standard input.", examples=["stdin"])
    encoding: str | None = Field(
        default="utf-8",
        description=(
            "Character encoding of the input; lines become `str` messages, invalid sequences replaced by U+FFFD. "
            "null keeps every message as raw `bytes` (cheapest when no processor needs the text). Must be "
            "ASCII-compatible (utf-8, latin-1, cp1252, ...)."
        ),
        examples=["utf-8", "latin-1", None],
    )
    max_line_bytes: Size = Field(
        default=102400,
        description="Longer lines are cut to this many bytes and get the field `truncated: true`.",
        examples=[102400, "1MiB"],
    )
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="Emit a batch as soon as it holds this many lines.",
        examples=[1000],
    )
    batch_timeout: Duration = Field(
        default=0.1,
        description="Emit a partial batch once its oldest line has waited this long.",
        examples=["100ms", "1s"],
    )

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            info = codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}") from None
        try:
            ascii_compatible = "\n\r".encode(info.name) == b"\n\r" and b"\n".decode(info.name) == "\n"
        except (UnicodeError, LookupError, TypeError):
            ascii_compatible = False
        if not ascii_compatible:
            raise ValueError(
                f"encoding {value!r} is not ASCII-compatible (lines are split on the byte 0x0A); "
                "use utf-8, latin-1 or a similar encoding"
            )
        return info.name

    @field_validator("max_line_bytes")
    @classmethod
    def _check_max_line(cls, value: int) -> int:
        if value < 1:
            raise ValueError("max_line_bytes must be at least 1")
        return value

    @field_validator("batch_timeout")
    @classmethod
    def _check_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("batch_timeout must be greater than 0")
        return value


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: Stdin, closed: asyncio.Future[None]) -> None:
        self.owner = owner
        self.closed = closed

    def data_received(self, data: bytes) -> None:
        self.owner.feed(data)

    def eof_received(self) -> bool:
        self.owner.feed_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        # EIO is how a terminal reports a hangup: an end of input like any other.
        if exc is not None and getattr(exc, "errno", None) != errno.EIO:
            self.owner.log.warning("standard input failed", extra=kv(error=str(exc)))
        self.owner.feed_eof()
        if not self.closed.done():
            self.closed.set_result(None)


class Stdin(Input):
    type_name: ClassVar[str] = "stdin"
    description: ClassVar[str] = "Reads newline-delimited log lines from standard input."
    Config: ClassVar[type[StdinConfig]] = StdinConfig
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: StdinConfig

    def counters(self) -> dict[str, float]:
        return {"lines": self.lines, "truncated_lines": self.truncated}

    def __init__(self, config: StdinConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.fd: int | None = None
        """The file descriptor to read; None means standard input. Tests set an `os.pipe()` read end."""
        self.lines = 0
        """Lines read so far."""
        self.truncated = 0
        """Lines cut to `max_line_bytes` so far."""
        self._pending: list[dict[str, Any]] = []
        self._pending_since = 0.0
        self._partial = b""
        self._discarding = False  # inside the tail of an over-long line, up to its newline
        self._eof = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._paused = False
        self._transport: asyncio.ReadTransport | None = None
        self._high_water = config.batch_size * 4

    # ----------------------------------------------------------------- parsing (synchronous)

    def feed(self, data: bytes) -> None:
        """Take a chunk of input: complete lines become pending records, the rest waits."""
        if not data or self._eof:
            return
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                return
            self._discarding = False
            data = data[newline + 1 :]
        buf = self._partial + data if self._partial else data
        last = buf.rfind(b"\n")
        if last < 0:
            self._partial = buf
            if len(buf) > self.config.max_line_bytes:
                self._partial = b""
                self._discarding = True
                self._add_lines([buf], time.time())
                self._wake.set()
            return
        self._partial = buf[last + 1 :]
        if len(self._partial) > self.config.max_line_bytes:
            tail, self._partial = self._partial, b""
            self._discarding = True
            self._add_complete(buf[:last])
            self._add_lines([tail], time.time())
        else:
            self._add_complete(buf[:last])
        self._wake.set()

    def feed_eof(self) -> None:
        """End of input: the last line without a newline is flushed as a line of its own."""
        if self._eof:
            return
        if self._partial:
            tail, self._partial = self._partial, b""
            self._add_lines([tail], time.time())
        self._eof = True
        self._wake.set()

    def _add_complete(self, block: bytes) -> None:
        """Records for `block`, complete lines separated by b"\\n" (no trailing newline)."""
        cfg = self.config
        ts = time.time()
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n")
            if block.endswith(b"\r"):
                block = block[:-1]
        if len(block) > cfg.max_line_bytes:
            self._add_lines(block.split(b"\n"), ts)
            return
        # Fast path: one decode and one split for the whole chunk.
        if cfg.encoding is None:
            lines: list[Any] = block.split(b"\n")
        else:
            lines = block.decode(cfg.encoding, "replace").split("\n")
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.extend([{"timestamp": ts, "message": line} for line in lines])
        self.lines += len(lines)
        self._maybe_pause()

    def _add_lines(self, lines: list[bytes], ts: float) -> None:
        """Slow path: strip CR, cut over-long lines, decode one by one."""
        cfg = self.config
        limit, encoding = cfg.max_line_bytes, cfg.encoding
        records = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            truncated = len(line) > limit
            if truncated:
                line = line[:limit]
                if not self.truncated:
                    self.log.warning(
                        "standard input line longer than max_line_bytes was truncated "
                        "(further truncations are counted in the loss ledger, not logged)",
                        extra=kv(component=self.ctx.name, max_line_bytes=limit),
                    )
                self.truncated += 1
                self.ctx.loss("truncated", 1)  # the line is kept, its tail is not
            record: dict[str, Any] = {
                "timestamp": ts,
                "message": line if encoding is None else line.decode(encoding, "replace"),
            }
            if truncated:
                record["truncated"] = True
            records.append(record)
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.extend(records)
        self.lines += len(records)
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        if not self._paused and self._transport is not None and len(self._pending) >= self._high_water:
            self._paused = True
            self._transport.pause_reading()

    def _maybe_resume(self) -> None:
        if self._paused and self._transport is not None and len(self._pending) < self.config.batch_size:
            self._paused = False
            self._transport.resume_reading()

    # ----------------------------------------------------------------- the loop

    async def run(self, ctx: InputContext) -> None:
        try:
            fd = sys.stdin.fileno() if self.fd is None else self.fd
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError, AttributeError) as exc:  # closed, or replaced by an object without one
            self.log.warning("standard input is not open; nothing to read", extra=kv(error=str(exc)))
            return
        loop = asyncio.get_running_loop()
        # The transport closes the file it is given, so it gets a duplicate of the descriptor. O_NONBLOCK,
        # which the loop sets, belongs to the open file shared with the original: restored at the end.
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
        reader: asyncio.Task[None] | None = None
        closed = loop.create_future()
        stop_watch = asyncio.ensure_future(ctx.stopping.wait())
        stop_watch.add_done_callback(lambda _: self._wake.set())
        try:
            # epoll cannot watch regular files nor most character devices (/dev/null); terminals it can.
            pollable = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISCHR(mode) and os.isatty(fd))
            if pollable:
                try:
                    self._transport, _ = await loop.connect_read_pipe(lambda: _Protocol(self, closed), pipe)
                except (ValueError, OSError):
                    pass  # read it in a thread instead
            if self._transport is None:
                reader = asyncio.ensure_future(self._read_in_thread(pipe))
            await self._pump(ctx)
        finally:
            stop_watch.cancel()
            if self._transport is not None:
                self._transport.close()
                self._transport = None
                # The transport closes the duplicate descriptor once it has let go of it.
                await asyncio.wait([closed], timeout=1.0)
            elif reader is not None:
                self._room.set()
                # A read of a regular file returns promptly; the thread closes the file when it is done.
                await asyncio.wait([reader], timeout=1.0)
                reader.cancel()
            else:
                pipe.close()
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETFL, flags)

    async def _read_in_thread(self, pipe: Any) -> None:
        def read_chunk() -> bytes:
            try:
                return pipe.read(READ_SIZE) or b""
            except ValueError:  # closed meanwhile
                return b""

        try:
            while not self._eof:
                while len(self._pending) >= self._high_water and not self._eof:
                    self._room.clear()
                    await self._room.wait()  # backpressure: wait until the pump has emitted
                if self._eof:
                    break
                chunk = await asyncio.to_thread(read_chunk)
                if not chunk:
                    break
                self.feed(chunk)
        finally:
            # Only after the last read has returned, so no thread is left using the descriptor.
            pipe.close()
            self.feed_eof()

    async def _pump(self, ctx: InputContext) -> None:
        """Emit pending lines in batches until end of input or stop."""
        batch_size, timeout = self.config.batch_size, self.config.batch_timeout
        while True:
            pending = self._pending
            stopping = ctx.stopping.is_set()
            if stopping:
                # Standard input cannot be read again after a restart: hand on what was read, even a partial line.
                self.feed_eof()
            if len(pending) >= batch_size:
                await self._emit(ctx, batch_size)
                continue
            if self._eof:
                if pending:
                    await self._emit(ctx, len(pending))
                return
            if pending:
                wait = self._pending_since + timeout - time.monotonic()
                if wait <= 0:
                    await self._emit(ctx, len(pending))
                    continue
            else:
                wait = None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _emit(self, ctx: InputContext, count: int) -> None:
        pending = self._pending
        if count >= len(pending):
            records, self._pending = pending, []
        else:
            records, self._pending = pending[:count], pending[count:]
            self._pending_since = time.monotonic()
        self._maybe_resume()
        if len(self._pending) < self._high_water:
            self._room.set()
        await ctx.emit(Batch(LOGS, records, sum([len(r["message"]) for r in records])))
