"""Data files only the collector's user can read: files 0600, directories 0700, whatever the umask.

Buffer segments, ledgers, checkpoints and dead letters hold the data the
collector ships (log lines with whatever secrets applications put in them) and
the positions it ships them from. They are created with an explicit mode, and
the mode is set again with `fchmod`/`chmod` right after: the umask can only
narrow the mode given to `open`/`mkdir` (a `0o077` umask is harmless, a
`0o777` one would make a directory unusable), and a file or directory that
already existed keeps whatever mode it had until it is set.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path, *, existing: bool = True) -> Path:
    """Create `path` and its missing parents as 0700 directories; an existing `path` is made 0700 too.

    Parents that already exist are left alone (the data directory's parent is the operator's), and so
    is an existing `path` with `existing=False`: the data directory itself may be one the operator
    made and shares (`data_dir: /tmp/x` must not turn /tmp private); what the collector creates in it
    is its own.
    """
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():  # a file where a directory must be
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory)) from None
        os.chmod(directory, DIR_MODE)
    if not missing and existing:
        os.chmod(path, DIR_MODE)
    return path


def open_private(path: Path | str, flags: int) -> int:
    """`os.open(path, flags)` for a data file: created 0600, and made 0600 if it existed (close-on-exec)."""
    fd = os.open(path, flags | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_created_private(path: Path | str, flags: int) -> int:
    """`os.open(path, flags)`, creating the file 0600 (whatever the umask) if it does not exist.

    Unlike `open_private`, a file that already exists keeps its mode: for files an operator
    reads with other tools (the `file` output's), who may have opened them up on purpose.
    """
    for _ in range(3):
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        except FileExistsError:
            try:
                return os.open(path, flags | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # removed between the two calls: create it
        try:
            os.fchmod(fd, FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise OSError(f"{path} keeps appearing and disappearing; not opened")
