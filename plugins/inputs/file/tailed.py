"""One watched file: its identity, descriptor, positions, acknowledgements, and lines to records.

A `TailedFile` is one *stream of content*: the bytes of one file from its first
byte on. It is never reset in place: when a file is truncated or its inode is
reused, the stream ends (or, after copytruncate, continues in the copy) and a new
`TailedFile` starts at offset 0. That keeps every acknowledgement in flight tied to
the content it was read from.

Positions (file offsets):

- `read_pos`: the next byte to read;
- `commit_position`: every byte before it is in a record already emitted: the
  smallest of the splitter's `safe_offset` (start of an incomplete line), the line
  format's `held_from` and the multiline joiner's `held_from`;
- `committed`: the newest position acknowledged downstream, in order, by this
  file's own `AckTracker` (see collector/acks.py: one tracker per file, so that no
  file's position is skipped over by another's). Only this goes to the checkpoint.

Chunk processing (`process`): one decode and one split per chunk on the fast path
(`raw`, no multiline), records built by one list comprehension; the line path
(multiline or a container format) needs each line's offset and goes line by line.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.acks import AckToken, AckTracker
from collector_plugins.inputs.file.codec import INVALID_BYTES, FileCodec, cut_point, decode, file_codec
from collector_plugins.inputs.file.config import FileInputConfig
from collector_plugins.inputs.file.identity import Fingerprint
from collector_plugins.inputs.file.line_formats import ParsedLines
from collector_plugins.inputs.file.lines import LineSplitter, Segment, lines_of, over_long
from collector_plugins.inputs.file.multiline import MultilineJoiner

READ_SIZE = 1024 * 1024
"""Bytes read per call: large chunks, one decode and one batch each."""
FORMAT_HOLD_TIMEOUT = 2.0
"""Seconds a container runtime's partial line may wait for its last part before it is emitted as it is."""
FORMAT_MIN_LINE_BYTES = 64 * 1024
"""With a container format, raw lines are cut only past this (runtimes write at most 16 KiB of text plus the
envelope per line); `max_line_bytes` caps the joined message instead (longer ones come in pieces)."""
TOO_LONG = "message too long"
FORMAT_FAILED = "format failed"
"""The reason counted for a line the line format raised on (a bug in the format; the line is kept)."""
"""The line formats' error reason for a message emitted in pieces (not a parse error)."""


@dataclass
class Counters:
    """What the input reports (`counters()`), bumped once per chunk."""

    lines: int = 0
    bytes: int = 0
    truncated_lines: int = 0
    invalid_bytes: int = 0
    parse_errors: int = 0
    messages_split: int = 0
    rotations: int = 0
    truncations: int = 0
    stale_checkpoints: int = 0
    files_released: int = 0
    open_errors: int = 0
    lost_bytes: int = 0
    multiline_orphans: int = 0
    multiline_overflows: int = 0
    multiline_not_text: int = 0


class Shared:
    """What every file of one input shares: settings, counters, and the input's callbacks."""

    def __init__(
        self,
        config: FileInputConfig,
        host: str,
        counters: Counters,
        loss: Callable[[str, int], None],
        on_commit: Callable[[TailedFile], None],
        on_truncated_line: Callable[[TailedFile], None],
        line_format: Any = None,
    ) -> None:
        self.config = config
        self.host = host
        self.counters = counters
        self.loss = loss
        self.on_commit = on_commit
        self.on_truncated_line = on_truncated_line
        self.line_format = line_format
        self.line_limit = (
            config.max_line_bytes if line_format is None else max(config.max_line_bytes, FORMAT_MIN_LINE_BYTES)
        )
        """Raw lines longer than this are cut."""
        ml = config.multiline
        self.start_re = re.compile(ml.start) if ml is not None and ml.start is not None else None
        self.continuation_re = re.compile(ml.continuation) if ml is not None and ml.continuation is not None else None

    def new_joiner(self) -> MultilineJoiner | None:
        ml = self.config.multiline
        if ml is None:
            return None
        return MultilineJoiner(self.start_re, self.continuation_re, ml.max_lines, ml.max_bytes, ml.timeout)


class TailedFile:
    def __init__(
        self,
        shared: Shared,
        path: str,
        dev: int,
        ino: int,
        fingerprint: Fingerprint,
        offset: int,
        fields: dict[str, Any] | None = None,
        source: str | None = None,
    ) -> None:
        self.shared = shared
        self.path = path
        """Where the file is now (as far as known); for a rotated file its new name, or its last one."""
        self.source = source or path
        """The name it was matched under: the `file` field of its records."""
        self.dev = dev
        self.ino = ino
        self.fingerprint = fingerprint
        self.fd: int | None = None
        self.fields = fields or {}
        self.committed = offset
        self.rotated = False
        """No longer at a matched name (renamed away, replaced or deleted): read to its end, then released."""
        self.deleted = False
        self.wants_read = True
        self.size = 0
        """Size at the last stat."""
        self.last_growth = time.monotonic()
        self.last_active = self.last_growth
        config = shared.config
        self.codec: FileCodec = file_codec(config.encoding)
        self.splitter = LineSplitter(self.codec, shared.line_limit, offset)
        self.format = shared.line_format
        self.format_state = self.format.new_state() if self.format is not None else None
        self._format_errors = 0
        self._format_split = 0
        self.joiner = shared.new_joiner()
        self.tracker = AckTracker(self._committed)
        self._last_token = offset

    def __repr__(self) -> str:
        return f"TailedFile({self.path!r}, {self.dev}:{self.ino}, read={self.read_pos}, committed={self.committed})"

    @property
    def key(self) -> tuple[int, int]:
        return (self.dev, self.ino)

    @property
    def read_pos(self) -> int:
        return self.splitter.pos

    @property
    def commit_position(self) -> int:
        position = self.splitter.safe_offset
        state = self.format_state
        if state is not None and state.held_from is not None:
            position = min(position, state.held_from)
        joiner = self.joiner
        if joiner is not None and joiner.held_from is not None:
            position = min(position, joiner.held_from)
        return position

    @property
    def holding(self) -> bool:
        """Lines read but not yet emitted (held by the format or the joiner, or an incomplete last line)."""
        return self.commit_position < self.read_pos

    # ----------------------------------------------------------------- descriptor

    def attach(self, fd: int) -> None:
        """Use `fd` (open on this file) from now on."""
        self.fd = fd
        encoding = self.shared.config.encoding
        if encoding in ("utf-16", "utf-32"):
            self._set_codec(file_codec(encoding, os.pread(fd, 4, 0)))

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass

    def _set_codec(self, codec: FileCodec) -> None:
        if codec != self.codec:
            self.codec = codec
            old = self.splitter
            self.splitter = LineSplitter(codec, old.limit, old.pos)
            self.splitter.line_start = old.line_start

    # ----------------------------------------------------------------- acknowledgements

    def token(self) -> AckToken:
        """The token for a batch of records just made from this file: it commits up to `commit_position`."""
        position = self._last_token = self.commit_position
        return self.tracker.token(position)

    def advance(self) -> None:
        """Commit past bytes that produced no record (a discarded tail), in order with the batches before."""
        position = self.commit_position
        if position != self._last_token:
            self._last_token = position
            self.tracker.token(position).release()

    def _committed(self, position: int) -> None:
        self.committed = position
        self.shared.on_commit(self)

    # ----------------------------------------------------------------- lines to records

    def process(self, data: bytes, now: float) -> tuple[list[dict[str, Any]], int]:
        """Records completed by `data`, the next bytes of the file, and their size in bytes."""
        if self.splitter.pos == 0 and self.shared.config.encoding in ("utf-16", "utf-32"):
            self._set_codec(file_codec(self.shared.config.encoding, data[:4]))
        self.last_growth = self.last_active = now
        self.shared.counters.bytes += len(data)
        return self._records(self.splitter.feed(data), now)

    def finish(self, now: float) -> list[dict[str, Any]]:
        """Everything still held, as it is: the file is finished (released), its last line has no newline."""
        records, _ = self._records(self.splitter.flush(), now)
        if self.format is not None and self.format_state is not None:
            records.extend(self._format_records(self.format.flush(self.format_state), now))
        if self.joiner is not None:
            records.extend(self._join_flush())
        return records

    def next_deadline(self) -> float | None:
        """When held lines must be emitted even without more input (monotonic), if any are held."""
        deadline = None
        state = self.format_state
        if state is not None and state.held_from is not None:
            deadline = state.held_since + FORMAT_HOLD_TIMEOUT
        joiner = self.joiner
        if joiner is not None and joiner.holding:
            due = joiner.held_since + joiner.timeout
            deadline = due if deadline is None else min(deadline, due)
        return deadline

    def flush_due(self, now: float) -> list[dict[str, Any]]:
        """Held lines whose time is up."""
        out: list[dict[str, Any]] = []
        state = self.format_state
        if (
            self.format is not None
            and state is not None
            and state.held_from is not None
            and now - state.held_since >= FORMAT_HOLD_TIMEOUT
        ):
            out.extend(self._format_records(self.format.flush(state), now))
        if self.joiner is not None and self.joiner.due(now):
            out.extend(self._join_flush())
        return out

    def _records(self, segments: list[Segment], now: float) -> tuple[list[dict[str, Any]], int]:
        if not segments:
            return [], 0
        counters = self.shared.counters
        lines_before = counters.lines
        if self.format is None and self.joiner is None:
            records = self._raw(segments)
        else:
            records = []
            for segment in segments:
                records.extend(self._line_path(segment, now))
        # Payload bytes: the lines without their newlines.
        newlines = counters.lines - lines_before - len(segments)
        return records, sum([len(s.data) for s in segments]) - newlines * self.codec.unit

    def _base(self) -> dict[str, Any]:
        return {"file": self.source, "host": self.shared.host, **self.fields}

    def _raw(self, segments: list[Segment]) -> list[dict[str, Any]]:
        """The fast path: one decode and split per segment, records from one comprehension."""
        codec, limit, counters = self.codec, self.shared.line_limit, self.shared.counters
        ts = time.time()
        source, host, fields = self.source, self.shared.host, self.fields
        out: list[dict[str, Any]] = []
        for segment in segments:
            if segment.truncated:
                out.extend(self._slow_lines([bytes(segment.data)], ts, truncated=True))
                continue
            messages: list[Any]
            if codec.name == "bytes":
                block = bytes(segment.data)
                if b"\r" in block:
                    block = block.replace(b"\r\n", b"\n").removesuffix(b"\r")
                messages = block.split(b"\n")
                if max(map(len, messages)) > limit:
                    out.extend(self._slow_lines(lines_of(segment, codec)[0], ts))
                    continue
            else:
                before = INVALID_BYTES.count
                text = decode(segment.data, codec)
                counters.invalid_bytes += INVALID_BYTES.count - before
                if "\r" in text:
                    text = text.replace("\r\n", "\n").removesuffix("\r")
                messages = text.split("\n")
                if over_long(messages, codec, limit):
                    raw_lines = lines_of(segment, codec)[0]
                    if max(map(len, raw_lines)) > limit:
                        counters.invalid_bytes -= INVALID_BYTES.count - before  # the slow path decodes (counts) again
                        out.extend(self._slow_lines(raw_lines, ts))
                        continue
            counters.lines += len(messages)
            if fields:
                out.extend([{"timestamp": ts, "message": m, "file": source, "host": host, **fields} for m in messages])
            else:
                out.extend([{"timestamp": ts, "message": m, "file": source, "host": host} for m in messages])
        return out

    def _cut(self, line: bytes) -> tuple[bytes, bool]:
        limit = self.shared.line_limit
        if len(line) <= limit:
            return line, False
        return line[: cut_point(line, limit, self.codec)], True

    def _text(self, line: bytes) -> Any:
        codec = self.codec
        if codec.name == "bytes":
            return line.removesuffix(b"\r")
        before = INVALID_BYTES.count
        text = decode(line, codec)
        self.shared.counters.invalid_bytes += INVALID_BYTES.count - before
        return text.removesuffix("\r")

    def _note_truncated(self, count: int) -> None:
        if count:
            self.shared.counters.truncated_lines += count
            self.shared.loss("line_too_long", count)
            self.shared.on_truncated_line(self)

    def _slow_lines(self, lines: list[bytes], ts: float, truncated: bool = False) -> list[dict[str, Any]]:
        """Line by line: over-long lines cut to max_line_bytes and marked."""
        base = self._base()
        out = []
        cut_count = 0
        for line in lines:
            line, cut = self._cut(line)
            record = {"timestamp": ts, "message": self._text(line), **base}
            if cut or truncated:
                record["truncated"] = True
                cut_count += 1
            out.append(record)
        self.shared.counters.lines += len(out)
        self._note_truncated(cut_count)
        return out

    def _line_path(self, segment: Segment, now: float) -> list[dict[str, Any]]:
        """Multiline or a container format: each line with the offset where it starts."""
        lines, starts = lines_of(segment, self.codec)
        self.shared.counters.lines += len(lines)
        limit = self.shared.line_limit
        cut = {i for i, line in enumerate(lines) if len(line) > limit} if max(map(len, lines)) > limit else set()
        if segment.truncated:
            cut.add(0)
        if cut:
            lines = [self._cut(line)[0] if i in cut else line for i, line in enumerate(lines)]
            self._note_truncated(len(cut))
        records: list[dict[str, Any]]
        if self.format is not None:
            records, record_starts = [], []
            for a, b in _runs(len(lines), cut):
                parsed = self._parse(lines[a:b], starts[a:b])
                if a in cut:
                    for record in parsed.records:
                        record["truncated"] = True
                records.extend(self._with_base(parsed.records))
                record_starts.extend(parsed.starts)
            self._count_format_errors()
        else:
            ts = time.time()
            base = self._base()
            records = [{"timestamp": ts, "message": self._text(line), **base} for line in lines]
            for i in cut:
                records[i]["truncated"] = True
            record_starts = starts
        if self.joiner is None:
            return records
        return self._join(records, record_starts, now)

    def _parse(self, lines: list[bytes], starts: list[int]) -> ParsedLines:
        """The line format's records for consecutive `lines`; a line it raises on never costs the others.

        A format never raises (its contract, fuzzed in tests/plugins/test_container_formats_fuzz.py). Should
        one all the same (a bug), the lines go through it one at a time (a chunk of one line is a valid
        chunk), and a line that still raises becomes a record of its own, the line as text with `parse_error`
        set, counted as a parse error. Otherwise the input would fail on the same bytes after every restart
        and never read the rest of the file.
        """
        fmt, state = self.format, self.format_state
        assert fmt is not None and state is not None
        try:
            return fmt.parse(state, lines, starts[0])
        except Exception:
            pass
        records: list[dict[str, Any]] = []
        record_starts: list[int] = []
        for line, start in zip(lines, starts, strict=True):
            try:
                parsed = fmt.parse(state, [line], start)
            except Exception as exc:
                state.errors[FORMAT_FAILED] += 1
                reason = f"{fmt.name} format failed: {type(exc).__name__}: {exc}"[:256]
                parsed = ParsedLines(
                    [{"timestamp": time.time(), "message": self._text(line), "parse_error": reason}], [start]
                )
            records.extend(parsed.records)
            record_starts.extend(parsed.starts)
        return ParsedLines(records, record_starts)

    def _with_base(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        base = self._base()
        for record in records:
            record.update(base)
        return records

    def _format_records(self, parsed: Any, now: float) -> list[dict[str, Any]]:
        records = self._with_base(parsed.records)
        self._count_format_errors()
        if self.joiner is None or not records:
            return records
        return self._join(records, parsed.starts, now)

    def _join(self, records: list[dict[str, Any]], starts: list[int], now: float) -> list[dict[str, Any]]:
        joiner = self.joiner
        assert joiner is not None
        counts = (joiner.orphans, joiner.overflows, joiner.not_text)
        out = joiner.push(records, starts, now)
        counters = self.shared.counters
        counters.multiline_orphans += joiner.orphans - counts[0]
        counters.multiline_overflows += joiner.overflows - counts[1]
        counters.multiline_not_text += joiner.not_text - counts[2]
        return out

    def _join_flush(self) -> list[dict[str, Any]]:
        assert self.joiner is not None
        return self.joiner.flush()

    def _count_format_errors(self) -> None:
        state = self.format_state
        if state is not None:
            split = state.errors.get(TOO_LONG, 0)
            failed = sum(state.errors.values()) - split
            counters = self.shared.counters
            counters.parse_errors += failed - self._format_errors
            counters.messages_split += split - self._format_split
            self._format_errors, self._format_split = failed, split


def _runs(count: int, cut: set[int]) -> list[tuple[int, int]]:
    """[a, b) ranges over `count` lines where every cut line is a range of its own.

    A cut line does not occupy len(line) + 1 bytes, so a line format gets it in a call of its own,
    with its own start offset.
    """
    runs, a = [], 0
    for i in sorted(cut):
        if a < i:
            runs.append((a, i))
        runs.append((i, i + 1))
        a = i + 1
    if a < count:
        runs.append((a, count))
    return runs
