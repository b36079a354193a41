"""Cutting a byte stream into messages: newline-delimited lines and octet-counted frames.

Both framers take chunks as they arrive and return the complete messages in
them as `bytes`, plus the indexes of the messages that were cut to the maximum
length (usually an empty tuple). What follows the last complete message waits
for the next chunk; `finish()` returns it at the end of the stream.

- `LineSplitter`: messages end with `\\n` (a `\\r` before it is dropped). The
  whole chunk is split in one call; only a chunk holding an over-long line
  takes the slow path. An over-long line is cut at `max_bytes` and the rest of
  it, up to its newline, is discarded, so a stream without newlines cannot
  grow memory without bound.
- `OctetCountingFramer` (RFC 6587 3.4.1, used by syslog over TCP): each frame
  is `LENGTH SP MESSAGE`. A frame longer than `max_bytes` is cut and its
  remaining octets skipped. A frame that does not start with a length cannot
  be resynchronised: `feed` returns the frames before it and sets `error`;
  the caller hands those on and closes the connection.
"""

from __future__ import annotations

NO_CUTS: tuple[int, ...] = ()
# A length field longer than this cannot be a frame length (RFC 6587 allows any, senders use < 10 digits).
MAX_LENGTH_DIGITS = 10


class LineSplitter:
    __slots__ = ("_discarding", "_partial", "max_bytes")
    error = ""  # a line stream never loses its framing

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._partial = b""
        self._discarding = False  # inside the tail of an over-long line, up to its newline

    @property
    def pending(self) -> int:
        """Bytes held back, waiting for the end of their line."""
        return len(self._partial)

    def feed(self, data: bytes) -> tuple[list[bytes], tuple[int, ...]]:
        if self._discarding:
            newline = data.find(b"\n")
            if newline < 0:
                return [], NO_CUTS
            self._discarding = False
            data = data[newline + 1 :]
        buf = self._partial + data if self._partial else data
        last = buf.rfind(b"\n")
        limit = self.max_bytes
        if last < 0:
            if len(buf) > limit:
                self._partial = b""
                self._discarding = True
                return [buf[:limit]], (0,)
            self._partial = buf
            return [], NO_CUTS
        block = buf[:last]
        tail = buf[last + 1 :]
        if b"\r" in block:
            block = block.replace(b"\r\n", b"\n")
            if block.endswith(b"\r"):
                block = block[:-1]
        lines = block.split(b"\n")
        cuts: tuple[int, ...] | list[int] = NO_CUTS
        if len(block) > limit and max(map(len, lines)) > limit:
            cuts = [i for i, line in enumerate(lines) if len(line) > limit]
            for i in cuts:
                lines[i] = lines[i][:limit]
        if len(tail) > limit:
            self._partial = b""
            self._discarding = True
            cuts = [*cuts, len(lines)]
            lines.append(tail[:limit])
        else:
            self._partial = tail
        return lines, tuple(cuts)

    def finish(self) -> tuple[list[bytes], tuple[int, ...]]:
        """The last line if the stream ended without a newline."""
        tail, self._partial = self._partial, b""
        self._discarding = False
        if tail.endswith(b"\r"):
            tail = tail[:-1]
        return ([tail], NO_CUTS) if tail else ([], NO_CUTS)


class OctetCountingFramer:
    __slots__ = ("_buf", "_skip", "error", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.error = ""
        """Why the stream cannot be read further ("" while it can)."""
        self._buf = b""
        self._skip = 0  # octets of an over-long frame still to discard

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> tuple[list[bytes], tuple[int, ...]]:
        if self.error:
            return [], NO_CUTS
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return [], NO_CUTS
            data = data[self._skip :]
            self._skip = 0
        buf = self._buf + data if self._buf else data
        frames: list[bytes] = []
        cuts: list[int] = []
        limit = self.max_bytes
        pos, size = 0, len(buf)
        while pos < size:
            space = buf.find(b" ", pos, pos + MAX_LENGTH_DIGITS + 1)
            if space < 0:
                if size - pos > MAX_LENGTH_DIGITS or not buf[pos:].isdigit():
                    self.error = f"expected an octet count, got {buf[pos : pos + 16]!r}"
                    pos = size
                break  # the length field continues in the next chunk
            digits = buf[pos:space]
            if not digits.isdigit() or (len(digits) > 1 and digits[0] == 48):  # b"0"
                self.error = f"expected an octet count, got {buf[pos : pos + 16]!r}"
                pos = size
                break
            length = int(digits)
            start = space + 1
            end = start + length
            if length > limit:
                if start + limit > size:
                    break  # wait for the part that is kept
                cuts.append(len(frames))
                frames.append(buf[start : start + limit])
                if end > size:
                    self._skip = end - size
                    pos = size
                    break
                pos = end
                continue
            if end > size:
                break
            if length:
                frames.append(buf[start:end])
            pos = end
        self._buf = buf[pos:] if pos < size else b""
        return frames, tuple(cuts) if cuts else NO_CUTS

    def finish(self) -> tuple[list[bytes], tuple[int, ...]]:
        """A frame cut short by the end of the stream is returned as far as it got, marked as cut."""
        buf, self._buf = self._buf, b""
        self._skip = 0
        if not buf:
            return [], NO_CUTS
        space = buf.find(b" ")
        if space < 0 or not buf[:space].isdigit():
            return [], NO_CUTS
        frame = buf[space + 1 :]
        return ([frame[: self.max_bytes]], (0,)) if frame else ([], NO_CUTS)
