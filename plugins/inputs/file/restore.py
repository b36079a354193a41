"""Start-up: the checkpoint matched against the files as they are now.

For each checkpointed file (device + inode + fingerprint + acknowledged offset):

- found among the matched files with the same device + inode: resumed at its offset
  if it still starts with its fingerprint and is at least that long; otherwise the
  checkpoint is *stale* (inode reused, truncated or rewritten while we were
  stopped): counted, logged, the file read from its start, and the rest of the old
  content looked for in a copy (copytruncate while stopped). A file checkpointed
  while shorter than `fingerprint_bytes` (empty, just after a truncation: its
  fingerprint matches anything) may have been copied, truncated and written again
  without its first bytes telling: a copy named after it, made after the checkpoint
  was written and no longer like the file's start, makes the checkpoint stale too;
- not matched any more: renamed while we were stopped? It is looked for by device +
  inode in its directory and its tail read (then released like any rotated file);
- matched by name and fingerprint but under another device/inode number, while the
  old inode exists nowhere in the directory (device numbers can change across
  reboots): resumed;
- otherwise gone: forgotten.

Matched files without a checkpoint are seen the first time (`read_from` and
`ignore_older` apply).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from collector.log import kv
from collector_plugins.inputs.file.checkpoints import FileCheckpoint
from collector_plugins.inputs.file.identity import still_matches
from collector_plugins.inputs.file.search import find_by_inode, find_copy, find_copy_since
from collector_plugins.inputs.file.tailed import TailedFile

if TYPE_CHECKING:
    from collector_plugins.inputs.file.files import FileSet

Found = tuple[str, int, os.stat_result]
"""A copy: its path, an open descriptor, its stat."""


def restore_files(files: FileSet, entries: list[FileCheckpoint], scan: dict[str, os.stat_result]) -> None:
    by_key = {(e.dev, e.ino): e for e in entries}
    by_path = {e.path: e for e in entries if not e.rotated}
    known = {(e.dev, e.ino) for e in entries} | {(st.st_dev, st.st_ino) for st in scan.values()}
    stale: list[tuple[FileCheckpoint, Found | None]] = []
    for path, st in sorted(scan.items()):
        key = (st.st_dev, st.st_ino)
        if key in files.files:
            files.seen(path, st)  # a second name of a file already set up
            continue
        entry = by_key.pop(key, None)
        if entry is None:
            candidate = by_path.get(path)
            if (
                candidate is not None
                and (candidate.dev, candidate.ino) in by_key
                and find_by_inode(os.path.dirname(path), candidate.dev, candidate.ino) is None
                and _resume(files, path, candidate) is not None
            ):
                by_key.pop((candidate.dev, candidate.ino), None)
                files.log.info(
                    "file identity changed device or inode number but not content; resuming it",
                    extra=kv(file=path, offset=candidate.offset),
                )
                continue
            files.add_new(path, st, initial=True)
            continue
        copy = _copied_since(files, path, entry, known)
        if copy is not None or _resume(files, path, entry) is None:
            stale.append((entry, copy))
            _stale(files, entry, path)
            files.add_new(path, st, initial=False)
    for entry in by_key.values():
        _recover_renamed(files, entry)
    for entry, copy in stale:
        _recover_copy(files, entry, copy)


def _resume(files: FileSet, path: str, entry: FileCheckpoint) -> TailedFile | None:
    """The file continued from its checkpoint, if the checkpoint still describes it (else None: stale)."""
    fd = files.open_fd(path)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        valid = st.st_size >= entry.offset and still_matches(fd, entry.fingerprint)
    except OSError:
        valid = False
    if not valid:
        os.close(fd)
        return None
    tf = files.adopt(path, st, entry.fingerprint, entry.offset, fd)
    if tf.fd is not None:
        files.extend_fingerprint(tf, st.st_size)
    return tf


def _copied_since(files: FileSet, path: str, entry: FileCheckpoint, known: set[tuple[int, int]]) -> Found | None:
    """For a checkpoint whose fingerprint is too short to tell: the copy of a copytruncate made since it was written."""
    limit = files.config.fingerprint_bytes
    if entry.fingerprint.length >= limit or entry.updated <= 0:
        return None  # the fingerprint tells; or an old checkpoint without its time
    return find_copy_since(path, entry.fingerprint, entry.offset, entry.updated, known, limit)


def _stale(files: FileSet, entry: FileCheckpoint, path: str) -> None:
    files.counters.stale_checkpoints += 1
    files.log.warning(
        "checkpoint does not describe the file any more (truncated, rewritten or inode reused); "
        "reading it from the start",
        extra=kv(file=path, checkpoint_offset=entry.offset, fingerprint=str(entry.fingerprint)),
    )


def _recover_renamed(files: FileSet, entry: FileCheckpoint) -> None:
    """A checkpointed file no longer at a matched name: renamed while we were stopped? Read its tail."""
    path = find_by_inode(os.path.dirname(entry.path), entry.dev, entry.ino, hint=entry.path)
    if path is None:
        return  # deleted meanwhile: nothing left to read
    fd = files.open_fd(path)
    if fd is None:
        return
    st = os.fstat(fd)
    if st.st_size < entry.offset or not still_matches(fd, entry.fingerprint):
        os.close(fd)  # not the checkpointed content any more; not matched by include: not ours
        return
    tf = files.adopt(path, st, entry.fingerprint, entry.offset, fd, source=entry.path)
    tf.rotated = True
    files.log.info(
        "reading the rest of a file renamed while the input was stopped",
        extra=kv(file=path, was=entry.path, offset=entry.offset, unread_bytes=st.st_size - entry.offset),
    )


def _recover_copy(files: FileSet, entry: FileCheckpoint, found: Found | None = None) -> None:
    """After a truncation while we were stopped: the rest of the old content from its copy, if there is one."""
    if found is None:
        found = find_copy(os.path.dirname(entry.path), entry.fingerprint, entry.offset, set(files.files))
    if found is None:
        return
    path, fd, st = found
    tf = files.adopt(path, st, entry.fingerprint, entry.offset, fd, source=entry.path)
    tf.rotated = True
    files.log.info(
        "reading the rest of a truncated file from its copy",
        extra=kv(file=entry.path, copy=path, offset=entry.offset, unread_bytes=st.st_size - entry.offset),
    )
