"""Encodings of tailed files: how a line ends in bytes, where byte order marks are, decoding that counts errors.

A file is split into lines on the *bytes* of its newline in its encoding (b"\\n" for
UTF-8 and every ASCII-compatible encoding, b"\\n\\x00" for UTF-16-LE, ...). For
encodings whose code unit is wider than a byte a newline only counts at an offset
that is a multiple of the unit (offsets are absolute file offsets, and a file
starts on a unit boundary), so a byte pair that merely looks like a newline across
two characters is not taken for one.

`utf-16` / `utf-32` without a byte order pick it per file from the byte order mark
(little-endian when there is none, as most writers of BOM-less UTF-16 are Windows
programs); a byte order mark at the start of a file is never part of its first line.

Invalid bytes never stop reading: they are decoded as U+FFFD and counted, through
one error handler registered for the process (`INVALID_BYTES`). Decoding happens on
the event loop's thread only, so the count is exact per call.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

# Encodings whose decoding depends on escape sequences seen earlier: a chunk read from the
# middle of a file cannot be decoded on its own.
_STATEFUL_PREFIXES = ("iso2022", "utf-7", "utf_7", "hz")

_BOMS = {
    "utf-8": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}
# Upper bound of bytes per decoded character, where known: lines whose text length
# times this is within max_line_bytes cannot be over-long, so no byte-level check is needed.
_MAX_BYTES_PER_CHAR = {"utf-8": 4, "utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}

ERRORS = "collector_count_replace"


class _InvalidBytes:
    """Bytes replaced by U+FFFD since the process started (read it before and after a decode)."""

    count = 0


INVALID_BYTES = _InvalidBytes()


def _count_and_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    INVALID_BYTES.count += exc.end - exc.start
    return "\ufffd", exc.end


codecs.register_error(ERRORS, _count_and_replace)


@dataclass(frozen=True)
class FileCodec:
    """The concrete encoding of one file (byte order resolved)."""

    name: str
    newline: bytes
    bom: bytes
    max_bytes_per_char: int | None

    @property
    def unit(self) -> int:
        return len(self.newline)


def normalize_encoding(name: str) -> str:
    """The canonical name of a supported encoding; ValueError with the reason otherwise."""
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}") from None
    if canonical.startswith(_STATEFUL_PREFIXES):
        raise ValueError(f"encoding {name!r} is stateful (escape sequences); it cannot be read from the middle")
    if canonical == "utf-8-sig":
        return "utf-8"  # a UTF-8 byte order mark at the start of a file is skipped anyway
    if canonical in ("utf-16", "utf-32"):
        return canonical
    try:
        newline = "\n".encode(canonical)
        ok = newline.decode(canonical) == "\n"
    except (UnicodeError, LookupError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"encoding {name!r} cannot encode a newline; it cannot hold text lines")
    return canonical


def file_codec(encoding: str | None, head: bytes = b"") -> FileCodec:
    """The codec of a file whose first bytes are `head` (only read for `utf-16` / `utf-32`).

    `encoding` None means raw bytes: lines end in b"\\n" and are not decoded.
    """
    if encoding is None:
        return FileCodec("bytes", b"\n", b"", None)
    if encoding in ("utf-16", "utf-32"):
        be = "utf-16-be" if encoding == "utf-16" else "utf-32-be"
        name = be if head.startswith(_BOMS[be]) else encoding + "-le"
    else:
        name = encoding
    return FileCodec(name, "\n".encode(name), _BOMS.get(name, b""), _MAX_BYTES_PER_CHAR.get(name))


def decode(data: bytes | memoryview, codec: FileCodec) -> str:
    """Text of `data`; invalid sequences become U+FFFD and are counted in `INVALID_BYTES`."""
    return str(data, codec.name, ERRORS)


def find_newline(data: bytes, codec: FileCodec, base: int, start: int = 0) -> int:
    """Index of the first newline in `data[start:]` on a code-unit boundary (`data[0]` is at file offset `base`)."""
    newline, unit = codec.newline, codec.unit
    index = data.find(newline, start)
    while unit > 1 and index >= 0 and (base + index) % unit:
        index = data.find(newline, index + 1)
    return index


def rfind_newline(data: bytes, codec: FileCodec, base: int) -> int:
    """Index of the last newline in `data` on a code-unit boundary, or -1."""
    newline, unit = codec.newline, codec.unit
    index = data.rfind(newline)
    while unit > 1 and index >= 0 and (base + index) % unit:
        index = data.rfind(newline, 0, index + unit - 1)
    return index


def split_lines(block: bytes, codec: FileCodec, base: int) -> list[bytes]:
    """`block` (complete lines joined by newlines, without the last one) cut into lines on unit boundaries."""
    parts = block.split(codec.newline)
    unit = codec.unit
    if unit == 1 or all(len(p) % unit == 0 for p in parts):
        return parts  # with base aligned, every separator found was on a boundary
    lines, start = [], 0
    while True:
        index = find_newline(block, codec, base, start)
        if index < 0:
            lines.append(block[start:])
            return lines
        lines.append(block[start:index])
        start = index + unit


def cut_point(line: bytes, limit: int, codec: FileCodec) -> int:
    """Where to cut an over-long line to at most `limit` bytes without splitting a character, if possible."""
    cut = limit - limit % codec.unit
    if codec.name == "utf-8":
        # Step back over continuation bytes (10xxxxxx) so the head ends on a whole character.
        back = cut
        while back > 0 and cut - back < 3 and (line[back] & 0xC0) == 0x80:
            back -= 1
        if back > 0:
            cut = back
    return max(cut, codec.unit)
