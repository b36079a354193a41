"""What makes a file the same file: device + inode, and a fingerprint of its first bytes.

Device + inode alone is not enough: once a file is deleted (and closed) its inode
number may be given to the next file created, on the same path or another. So the
identity also holds a fingerprint, a hash of the file's first `length` bytes
(`fingerprint_bytes`, 1 KiB by default, or the whole file while it is shorter).
While a file is shorter than that, its fingerprint is extended as it grows, after
checking that the bytes it already covered have not changed.

- Same device + inode and the same first bytes: the same file (it may have been
  renamed, or be reached through another link).
- Same device + inode, different first bytes: the inode was reused by a new file, or
  the file was truncated and rewritten (copytruncate): a new file, read from its start.
- Same first bytes, another inode: another file. A copy is read on its own when it
  matches `include` (documented in the README); the one exception is a copytruncate
  rotation, where the copy is used to finish reading the truncated file.

An empty file has no fingerprint yet (`length` 0): it is identified by device + inode
until it has content.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass


def fingerprint_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True)
class Fingerprint:
    length: int
    digest: str

    @classmethod
    def of(cls, data: bytes) -> Fingerprint:
        return cls(len(data), fingerprint_hash(data))

    @classmethod
    def read(cls, fd: int, length: int) -> Fingerprint | None:
        """The fingerprint of the first `length` bytes of an open file; None if it is shorter now."""
        if length == 0:
            return EMPTY
        data = os.pread(fd, length, 0)
        if len(data) < length:
            return None
        return cls.of(data)

    def to_json(self) -> dict[str, object]:
        return {"bytes": self.length, "hash": self.digest}

    @classmethod
    def from_json(cls, value: object) -> Fingerprint:
        if not isinstance(value, dict):
            raise ValueError("fingerprint is not an object")
        length, digest = value.get("bytes"), value.get("hash")
        if not isinstance(length, int) or length < 0 or not isinstance(digest, str):
            raise ValueError("fingerprint needs an integer `bytes` and a string `hash`")
        return cls(length, digest)

    def __str__(self) -> str:
        return f"{self.digest[:16]}/{self.length}"


EMPTY = Fingerprint(0, fingerprint_hash(b""))


def take_fingerprint(fd: int, size: int, max_bytes: int) -> Fingerprint:
    """The fingerprint of an open file whose size is `size`: its first min(size, max_bytes) bytes."""
    length = min(size, max_bytes)
    if length <= 0:
        return EMPTY
    data = os.pread(fd, length, 0)
    return Fingerprint.of(data)


def still_matches(fd: int, fingerprint: Fingerprint) -> bool:
    """Whether the open file still starts with the bytes `fingerprint` covers."""
    return Fingerprint.read(fd, fingerprint.length) == fingerprint
