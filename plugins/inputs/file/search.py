"""Finding a file again after it was renamed or copied while we were not looking.

Both searches look only in one directory (where rotation tools put rotated files:
`app.log` -> `app.log.1`, `app.log-20261127`), never across the filesystem.

- `find_by_inode`: the file with this device + inode (a rename; its name may no
  longer match any include pattern).
- `find_copy`: another file that starts with the same fingerprint and is at least as
  long as the offset we had read to (the copy `copytruncate` made before truncating),
  the most recently modified one if there are several.
- `find_copy_since`: the same for a file whose fingerprint is too short to tell (an
  empty file's matches anything): a copy named after the file and modified after a
  given time, which the file itself no longer starts like.
"""

from __future__ import annotations

import os
import re
import stat

from collector_plugins.inputs.file.identity import Fingerprint, still_matches

ROTATED_SUFFIX = re.compile(r"[._-][0-9][0-9A-Za-z._:-]*")
"""What rotation tools append to a name: `.1`, `-20261127`, `.2026-11-27_08`."""
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip")
"""Rotated files compressed later are new files too, but never a copy to read lines from."""


def _regular_files(directory: str) -> list[tuple[str, os.stat_result]]:
    out: list[tuple[str, os.stat_result]] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return out
    for entry in entries:
        try:
            st = entry.stat()  # follows links: a link to the file counts as the file
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append((entry.path, st))
    return out


def find_by_inode(directory: str, dev: int, ino: int, hint: str | None = None) -> str | None:
    """A path in `directory` (or `hint`, tried first) naming the file with this device + inode."""
    if hint is not None:
        try:
            st = os.stat(hint)
        except OSError:
            pass
        else:
            if (st.st_dev, st.st_ino) == (dev, ino):
                return hint
    for path, st in _regular_files(directory):
        if (st.st_dev, st.st_ino) == (dev, ino):
            return path
    return None


def find_copy(
    directory: str, fingerprint: Fingerprint, min_size: int, exclude: set[tuple[int, int]]
) -> tuple[str, int, os.stat_result] | None:
    """(path, open descriptor, stat) of the newest other file starting like `fingerprint`, at least `min_size` long."""
    if fingerprint.length == 0:
        return None  # an empty fingerprint matches anything
    candidates = [
        (path, st)
        for path, st in _regular_files(directory)
        if (st.st_dev, st.st_ino) not in exclude and st.st_size >= max(min_size, fingerprint.length)
    ]
    candidates.sort(key=lambda item: item[1].st_mtime, reverse=True)
    for path, _ in candidates:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if st.st_size >= min_size and still_matches(fd, fingerprint):
                return path, fd, st
        except OSError:
            pass
        os.close(fd)
    return None


def find_copy_since(
    path: str,
    fingerprint: Fingerprint,
    min_size: int,
    since: float,
    exclude: set[tuple[int, int]],
    head_bytes: int,
) -> tuple[str, int, os.stat_result] | None:
    """(path, open descriptor, stat) of the oldest copy of `path` modified after `since` (epoch seconds).

    A copy: in the same directory, named as a rotation of the file (`app.log.1`, `app.log-20261127`; not
    compressed, not `app.log.lock`), at least `min_size` long, starting like `fingerprint`, while `path`
    itself no longer starts with the copy's first `head_bytes` bytes (it was truncated after the copy).
    """
    name = os.path.basename(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        current = os.pread(fd, head_bytes, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    candidates = [
        (candidate, st)
        for candidate, st in _regular_files(os.path.dirname(path))
        if _rotation_of(os.path.basename(candidate), name)
        and (st.st_dev, st.st_ino) not in exclude
        and st.st_mtime > since
        and st.st_size >= max(min_size, 1)
    ]
    candidates.sort(key=lambda item: item[1].st_mtime)  # the oldest one continues where the checkpoint stopped
    for candidate, _ in candidates:
        try:
            copy_fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            st = os.fstat(copy_fd)
            head = os.pread(copy_fd, head_bytes, 0)
            if st.st_size >= min_size and still_matches(copy_fd, fingerprint) and not current.startswith(head):
                return candidate, copy_fd, st
        except OSError:
            pass
        os.close(copy_fd)
    return None


def _rotation_of(candidate: str, name: str) -> bool:
    return (
        candidate.startswith(name)
        and ROTATED_SUFFIX.fullmatch(candidate, len(name)) is not None
        and not candidate.lower().endswith(COMPRESSED)
    )
