"""A file's bytes, fed in large chunks, cut into complete lines.

`LineSplitter.feed(chunk)` returns `Segment`s: normally one per chunk, the block of
every complete line in it (joined by newlines, without the last one), so that the
caller decodes and splits the whole block in one call. The bytes after the last
newline wait for the next chunk. A line longer than `max_line_bytes` (same rule as
the `stdin` input) becomes a segment of its own, cut to that length and marked
`truncated`; the rest of that line, up to its newline, is discarded, so a file
without newlines cannot grow memory without bound. A block is only searched for
over-long lines when its text could hold one (see `over_long`).

Positions: `safe_offset` is the file offset up to which every byte belongs to a line
already handed out, i.e. where reading would resume after a restart. While a line
is incomplete (or its over-long tail is being discarded) that is the line's start,
so a restart reads the whole line again rather than its tail alone.
"""

from __future__ import annotations

from itertools import accumulate
from typing import NamedTuple

from collector_plugins.inputs.file.codec import FileCodec, cut_point, find_newline, rfind_newline, split_lines


class Segment(NamedTuple):
    data: bytes | memoryview
    """Complete lines joined by the newline (without the final one), or one truncated line's head.

    A view into the chunk read (no copy of a large block), decoded directly."""
    start: int
    """File offset of the first byte of `data`."""
    truncated: bool
    """A single line cut to max_line_bytes (its tail discarded)."""


class LineSplitter:
    def __init__(self, codec: FileCodec, max_line_bytes: int, offset: int) -> None:
        self.codec = codec
        self.limit = max_line_bytes
        self.pos = offset
        """File offset of the next byte to be fed."""
        self.partial = b""
        """The incomplete last line, waiting for its newline."""
        self.line_start = offset
        """File offset where the incomplete line (partial or being discarded) starts."""
        self.discarding = False
        """Inside the tail of an over-long line, up to its newline."""

    @property
    def safe_offset(self) -> int:
        return self.line_start if (self.partial or self.discarding) else self.pos

    def feed(self, data: bytes) -> list[Segment]:
        codec = self.codec
        out: list[Segment] = []
        start = self.pos
        self.pos += len(data)
        if start == 0 and codec.bom and data.startswith(codec.bom):
            data = data[len(codec.bom) :]
            start = self.line_start = len(codec.bom)
        if self.discarding:
            index = find_newline(data, codec, start)
            if index < 0:
                return out
            self.discarding = False
            skip = index + codec.unit
            data = data[skip:]
            start += skip
            self.line_start = start
        if self.partial:
            buf, base = self.partial + data, self.line_start
        else:
            buf, base = data, start
        last = rfind_newline(buf, codec, base)
        if last < 0:
            self._hold(buf, base, out)
            return out
        out.append(Segment(memoryview(buf)[:last], base, False))
        end = last + codec.unit
        self._hold(buf[end:], base + end, out)
        return out

    def flush(self) -> list[Segment]:
        """The incomplete last line as a line of its own (the file is finished: it will never get its newline)."""
        if self.discarding:
            self.discarding = False
            self.line_start = self.pos
            return []
        if not self.partial:
            return []
        segment = Segment(self.partial, self.line_start, False)
        self.partial = b""
        self.line_start = self.pos
        return [segment]

    def _hold(self, buf: bytes, base: int, out: list[Segment]) -> None:
        self.line_start = base
        if len(buf) > self.limit:
            cut = cut_point(buf, self.limit, self.codec)
            out.append(Segment(buf[:cut], base, True))
            self.partial = b""
            self.discarding = True
        else:
            self.partial = buf


def over_long(texts: list[str], codec: FileCodec, limit: int) -> bool:
    """Whether any of these decoded lines may exceed `limit` bytes (exactly checked only when it may)."""
    if not texts:
        return False
    longest = max(map(len, texts))
    factor = codec.max_bytes_per_char
    return factor is None or longest * factor > limit


def lines_of(segment: Segment, codec: FileCodec) -> tuple[list[bytes], list[int]]:
    """The raw lines of a segment and the file offset where each starts."""
    if segment.truncated:
        return [bytes(segment.data)], [segment.start]
    lines = split_lines(bytes(segment.data), codec, segment.start)
    unit = codec.unit
    starts = list(accumulate([len(line) + unit for line in lines[:-1]], initial=segment.start))
    return lines, starts
