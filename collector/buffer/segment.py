"""Segment files and the frames in them (see `collector.buffer.disk` for the design).

A segment `NNNNNNNNNNNNNNNNNNNN.seg` (20-digit id) is a sequence of frames:

    offset  size  field
    0       4     magic b"CLB1"
    4       4     crc32 (u32 LE) of bytes 8..24 of the header followed by the payload
    8       4     payload length (u32 LE)
    12      4     record count (u32 LE), at least 1 and at most the payload length
    16      8     created_ms (u64 LE): wall-clock ms when the frame was appended
    24      n     payload: msgpack [kind, nbytes, records] (see `codec`)

The crc covers everything after itself (length, count, created_ms, payload), so
a damaged length is caught as surely as a damaged payload. Only the magic is
outside it; it is what resynchronisation looks for after a damaged frame.

Everything here is synchronous file I/O on raw descriptors (`os.pread`); the
disk buffer decides what runs on the event loop and what in a thread.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"CLB1"
HEADER = struct.Struct("<4sIIIQ")  # magic, crc, length, count, created_ms
HEADER_SIZE = HEADER.size  # 24
_COVERED = struct.Struct("<IIQ")  # length, count, created_ms: the header bytes under the crc
READ_CHUNK = 1 << 20  # read-ahead for frames smaller than this
_SEGMENT_NAME = re.compile(r"^(\d{20})\.seg$")


def segment_name(segment_id: int) -> str:
    return f"{segment_id:020d}.seg"


def list_segments(directory: Path) -> list[int]:
    """Ids of the segment files in `directory`, ascending."""
    ids = []
    for name in os.listdir(directory):
        m = _SEGMENT_NAME.match(name)
        if m:
            ids.append(int(m.group(1)))
    ids.sort()
    return ids


def frame_header(payload: bytes, count: int, created_ms: int) -> bytes:
    length = len(payload)
    crc = zlib.crc32(payload, zlib.crc32(_COVERED.pack(length, count, created_ms)))
    return HEADER.pack(MAGIC, crc, length, count, created_ms)


@dataclass(slots=True)
class Frame:
    """A frame whose checksum verified."""

    offset: int
    count: int
    created_ms: int
    payload: memoryview | bytes
    end: int  # offset of the next frame


@dataclass(slots=True)
class BadFrame:
    """What could be read of a frame that did not verify."""

    offset: int
    reason: str  # "truncated", "bad magic", "bad length", "crc mismatch"
    count: int  # records, when the header looks readable; else 0


class SegmentReader:
    """Reads frames from one open segment with `os.pread` and a small read-ahead.

    `end` passed to each call is the caller's idea of where valid data stops
    (the writer's offset for the segment being written, the file size for a
    sealed one); nothing at or beyond it is read, so data the writer appends
    later is never shadowed by a stale read-ahead.
    """

    __slots__ = ("_buf", "_buf_start", "fd")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf: bytes = b""
        self._buf_start = 0

    def close(self) -> None:
        os.close(self.fd)
        self._buf = b""

    def _read(self, offset: int, size: int, end: int) -> memoryview | bytes:
        """`size` bytes at `offset` (fewer if the file is shorter)."""
        start = offset - self._buf_start
        if start >= 0 and start + size <= len(self._buf):
            return memoryview(self._buf)[start : start + size]
        if size >= READ_CHUNK:
            return os.pread(self.fd, size, offset)
        self._buf = os.pread(self.fd, max(size, min(READ_CHUNK, end - offset)), offset)
        self._buf_start = offset
        return memoryview(self._buf)[:size]

    def read_frame(self, offset: int, end: int) -> Frame | BadFrame:
        if end - offset < HEADER_SIZE:
            return BadFrame(offset, "truncated", 0)
        header = self._read(offset, HEADER_SIZE, end)
        if len(header) < HEADER_SIZE:
            return BadFrame(offset, "truncated", 0)
        magic, crc, length, count, created_ms = HEADER.unpack(header)
        if magic != MAGIC:
            return BadFrame(offset, "bad magic", 0)
        plausible = count if 0 < count <= length else 0
        frame_end = offset + HEADER_SIZE + length
        if frame_end > end:
            return BadFrame(offset, "bad length", plausible)
        payload = self._read(offset + HEADER_SIZE, length, end)
        if len(payload) < length:
            return BadFrame(offset, "truncated", plausible)
        if zlib.crc32(payload, zlib.crc32(header[8:])) != crc or not plausible:
            return BadFrame(offset, "crc mismatch", plausible)
        return Frame(offset, count, created_ms, payload, frame_end)

    def resync(self, start: int, end: int) -> int:
        """Offset of the first frame at or after `start` that verifies; `end` if there is none."""
        pos = start
        while pos < end:
            chunk = os.pread(self.fd, min(READ_CHUNK, end - pos), pos)
            if not chunk:
                return end
            i = chunk.find(MAGIC)
            while i != -1:
                if isinstance(self.read_frame(pos + i, end), Frame):
                    return pos + i
                i = chunk.find(MAGIC, i + 1)
            if len(chunk) < len(MAGIC):
                return end
            pos += len(chunk) - (len(MAGIC) - 1)  # a magic may straddle two chunks
        return end

    def scan(self, start: int, end: int) -> Iterator[Frame | BadFrame]:
        """Every frame from `start` to `end`, verified; a damaged region yields one BadFrame, then scanning resumes."""
        offset = start
        while offset < end:
            frame = self.read_frame(offset, end)
            yield frame
            offset = frame.end if isinstance(frame, Frame) else self.resync(offset + 1, end)

    def header_counts(self, start: int, end: int) -> tuple[int, int]:
        """(records, first bad offset or -1) over the frames from `start`, reading headers only.

        For figures (pending events) of sealed segments: cheap, not a verification.
        """
        offset, records = start, 0
        while offset < end:
            header = os.pread(self.fd, HEADER_SIZE, offset)
            if len(header) < HEADER_SIZE:
                return records, offset
            magic, _crc, length, count, _created = HEADER.unpack(header)
            if magic != MAGIC or offset + HEADER_SIZE + length > end:
                return records, offset
            records += count
            offset += HEADER_SIZE + length
        return records, -1

    def created_ms_at(self, offset: int) -> int | None:
        header = os.pread(self.fd, HEADER_SIZE, offset)
        if len(header) < HEADER_SIZE or header[:4] != MAGIC:
            return None
        created: int = HEADER.unpack(header)[4]
        return created


def open_reader(path: Path) -> SegmentReader:
    return SegmentReader(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
