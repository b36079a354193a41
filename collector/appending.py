"""Appending to a file all of a write or none of it.

A write the disk cuts short (a short count, then ENOSPC) would leave half a line
that the retried write is then glued to. `append_whole` cuts the written part off
again, measured from the file's real end (it may have been truncated behind our
back, as logrotate's copytruncate does); if even that fails, the caller is told by
the same OSError and must not assume the file ends where it did.
"""

from __future__ import annotations

import contextlib
import os


def append_whole(fd: int, data: bytes) -> None:
    """Append `data` to the O_APPEND descriptor `fd`, or raise with none of it left in the file (if it can be cut)."""
    view = memoryview(data)
    written = 0
    try:
        while written < len(data):
            written += os.write(fd, view[written:])
    except OSError:
        if written:
            with contextlib.suppress(OSError):  # cannot be cut: the caller treats the file's end as unknown
                os.ftruncate(fd, max(os.fstat(fd).st_size - written, 0))
        raise
