"""The set of files one input watches: discovery, rotation, truncation, descriptor cap.

Design note. Files are keyed by device + inode (`files`); `by_path` maps each
matched name to the file it holds now. Everything here runs on the event loop's
thread and does only metadata work (stat, open, a fingerprint read of at most
`fingerprint_bytes`); reading data is the input's job.

- A name that now holds another inode: the old file *lost its name* (rotation by
  rename, or deletion). It keeps its descriptor and is read to its end, then
  released once it has not grown for `rotate_wait`; its new name, when it can be
  found (the move event, or the same directory), is what the checkpoint remembers.
  The new file at the name is read from its start.
- A file shorter than what was read, or whose first bytes changed: truncated
  (copytruncate). The content read so far continues in the copy if one is found in
  the same directory (same first bytes, long enough): it is read there from where
  reading stopped, so lines written just before the truncation are not lost. The
  file itself starts over as new content from offset 0.
- `max_open_files`: before opening one more, the longest-idle file that is fully
  read is closed; it is reopened by name when it grows, after checking it is still
  the same file (device + inode + fingerprint).
- Released files stay in `retiring` (and in the checkpoint) until their last batch
  is acknowledged, so a crash before that reads their tail again.
- Start-up (matching the checkpoint against the files found) is in `restore.py`.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from typing import Any

from collector.log import RepeatLimiter, kv
from collector_plugins.inputs.file.checkpoints import FileCheckpoint
from collector_plugins.inputs.file.codec import FileCodec, file_codec, rfind_newline
from collector_plugins.inputs.file.globs import GlobSet
from collector_plugins.inputs.file.identity import Fingerprint, still_matches, take_fingerprint
from collector_plugins.inputs.file.search import find_by_inode, find_copy
from collector_plugins.inputs.file.tailed import Shared, TailedFile

Key = tuple[int, int]
# read_from: end starts after the last newline within this many bytes of the end (else at the end).
END_SCAN_BYTES = 64 * 1024


def _open(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def line_aligned_end(fd: int, size: int, codec: FileCodec) -> int:
    """The offset just after the last newline before `size` (a partial last line is read once complete)."""
    if size == 0:
        return 0
    start = max(0, size - END_SCAN_BYTES)
    start -= start % codec.unit
    tail = os.pread(fd, size - start, start)
    index = rfind_newline(tail, codec, start)
    return size if index < 0 else start + index + codec.unit


def _holds(fd: int, tf: TailedFile) -> os.stat_result | None:
    """The stat of `fd` if it is `tf`'s file (same device and inode, same first bytes), else None."""
    try:
        st = os.fstat(fd)
        return st if (st.st_dev, st.st_ino) == tf.key and still_matches(fd, tf.fingerprint) else None
    except OSError:
        return None


class FileSet:
    def __init__(
        self,
        shared: Shared,
        globs: GlobSet,
        log: logging.Logger,
        source_fields: Callable[[str], dict[str, Any]],
        covered: Callable[[str], bool],
        limiter: RepeatLimiter | None = None,
    ) -> None:
        self.shared = shared
        self.config = shared.config
        self.counters = shared.counters
        self.globs = globs
        self.log = log
        self.source_fields = source_fields
        self.covered = covered
        """Whether filesystem events report changes of this (real) path."""
        self.limiter = limiter or RepeatLimiter()
        self.files: dict[Key, TailedFile] = {}
        self.by_path: dict[str, TailedFile] = {}
        self.retiring: list[TailedFile] = []
        self.finishing: list[TailedFile] = []
        """Files whose content ended (truncated without a copy): their held lines must be emitted."""
        self.polled: set[Key] = set()
        self.waiting_room: set[Key] = set()
        self.version = 0
        """Bumped when the set of files or their names change: the checkpoint is then saved without delay."""
        """Closed files with data to read, waiting for a descriptor under max_open_files."""
        self.events_ok = True

    # ----------------------------------------------------------------- queries

    @property
    def open_count(self) -> int:
        return sum(1 for tf in self.files.values() if tf.fd is not None)

    def to_read(self) -> list[TailedFile]:
        """Files that may have unread data, rotated ones first (their writer has moved on)."""
        ready = [tf for tf in self.files.values() if tf.wants_read]
        ready.sort(key=lambda tf: not tf.rotated)
        return ready

    def needs_poll(self) -> bool:
        return any(self._polled(tf) for tf in self.files.values())

    def _polled(self, tf: TailedFile) -> bool:
        return tf.fd is not None and (not self.events_ok or tf.rotated or tf.key in self.polled)

    def checkpoint_entries(self) -> list[FileCheckpoint]:
        now = time.time()
        return [
            FileCheckpoint(tf.path, tf.dev, tf.ino, tf.fingerprint, tf.committed, tf.rotated, now)
            for tf in [*self.files.values(), *self.retiring]
        ]

    # ----------------------------------------------------------------- start-up

    def restore(self, entries: list[FileCheckpoint], scan: dict[str, os.stat_result]) -> None:
        """Match the checkpoint against the files found at start (see `restore.py`)."""
        from collector_plugins.inputs.file.restore import restore_files

        restore_files(self, entries, scan)

    # ----------------------------------------------------------------- discovery

    def reconcile(self, scan: dict[str, os.stat_result]) -> None:
        """Apply a full scan: new files, renames, names lost, growth missed by events."""
        for path, st in scan.items():
            self.seen(path, st)
        for path, tf in list(self.by_path.items()):
            if path not in scan and self.by_path.get(path) is tf:
                self.refresh(path)

    def refresh(self, path: str, hint: str | None = None) -> None:
        """Something happened at `path` (an event): find out what. `hint`: where it was moved to."""
        try:
            st = os.stat(path)
        except OSError:
            st = None
        current = self.by_path.get(path)
        if st is None or not stat.S_ISREG(st.st_mode) or not self.globs.matches(path):
            if current is not None:
                self._lost_name(current, hint)
            elif st is not None and stat.S_ISREG(st.st_mode):
                tf = self.files.get((st.st_dev, st.st_ino))
                if tf is not None and tf.rotated and tf.path != path:
                    tf.path = path  # a rotated file moved on again (app.log.1 -> app.log.2)
                    self.version += 1
            return
        self.seen(path, st)

    def seen(self, path: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        current = self.by_path.get(path)
        if current is not None and current.key == key:
            current.size = st.st_size
            if st.st_size != current.read_pos:
                current.wants_read = True
            return
        tf = self.files.get(key)
        if tf is not None and tf.fd is None and not self._same_content(tf, path):
            self._release_closed(tf)  # closed, and its inode now holds another file: the old one is gone
            tf = None
        if current is not None:
            self._lost_name(current)
        if tf is None:
            self.add_new(path, st, initial=False)
            return
        if self._holds(tf.path, tf) and not tf.rotated and _names(tf.path, key):
            return  # a second link to a file already watched under its first name
        if self._holds(tf.path, tf):
            del self.by_path[tf.path]
        tf.path = path
        tf.rotated = False
        self.by_path[path] = tf
        tf.wants_read = True
        self.version += 1

    def _same_content(self, tf: TailedFile, path: str) -> bool:
        fd = self.open_fd(path)
        if fd is None:
            return False
        try:
            return _holds(fd, tf) is not None
        finally:
            os.close(fd)

    def add_new(self, path: str, st: os.stat_result, initial: bool) -> TailedFile | None:
        """A file seen the first time. `initial`: found at start-up without a checkpoint (read_from applies)."""
        fd = self.open_fd(path)
        if fd is None:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return None
            fingerprint = take_fingerprint(fd, st.st_size, self.config.fingerprint_bytes)
            offset, why = 0, "new file"
            ignore_older = self.config.ignore_older
            if initial and ignore_older is not None and time.time() - st.st_mtime > ignore_older:
                offset, why = self._end(fd, st.st_size), "ignore_older"
            elif initial and self.config.read_from == "end":
                offset, why = self._end(fd, st.st_size), "read_from end"
            elif initial:
                why = "read_from beginning"
        except OSError as exc:
            os.close(fd)
            self._open_failed(path, exc)
            return None
        tf = self.adopt(path, st, fingerprint, offset, fd)
        if why == "ignore_older":
            tf.close()  # reopened when it grows
            tf.wants_read = False
        self.log.info(
            "watching file",
            extra=kv(file=path, inode=f"{st.st_dev}:{st.st_ino}", offset=offset, size=st.st_size, reason=why),
        )
        return tf

    def _end(self, fd: int, size: int) -> int:
        encoding = self.config.encoding
        head = os.pread(fd, 4, 0) if encoding in ("utf-16", "utf-32") else b""
        return line_aligned_end(fd, size, file_codec(encoding, head))

    def adopt(
        self,
        path: str,
        st: os.stat_result,
        fingerprint: Fingerprint,
        offset: int,
        fd: int,
        source: str | None = None,
    ) -> TailedFile:
        tf = TailedFile(
            self.shared,
            path,
            st.st_dev,
            st.st_ino,
            fingerprint,
            offset,
            fields=self.source_fields(source or path),
            source=source,
        )
        tf.size = st.st_size
        tf.attach(fd)
        tf.wants_read = st.st_size > offset
        self.files[tf.key] = tf
        self.version += 1
        if source is None:
            old = self.by_path.get(path)
            if old is not None and old is not tf:
                self._lost_name(old)
            self.by_path[path] = tf
        if not self.covered(os.path.realpath(path)):
            self.polled.add(tf.key)
        self._make_room(keep=tf)
        return tf

    def open_fd(self, path: str) -> int | None:
        try:
            return _open(path)
        except OSError as exc:
            self._open_failed(path, exc)
            return None

    def _open_failed(self, path: str, exc: OSError) -> None:
        if isinstance(exc, FileNotFoundError):
            return  # gone between listing and opening: nothing to report
        self.counters.open_errors += 1
        now, _first, suppressed = self.limiter.check("open", path)
        if now:
            self.log.warning(
                "cannot open file; retrying at the next scan",
                extra=kv(file=path, error=exc.strerror or str(exc), repeats_suppressed=suppressed),
            )

    # ----------------------------------------------------------------- rotation, truncation

    def _lost_name(self, tf: TailedFile, hint: str | None = None) -> None:
        """`tf` is no longer at its matched name: renamed away, replaced or deleted."""
        if self._holds(tf.path, tf):
            del self.by_path[tf.path]
        directory = os.path.dirname(tf.path)
        if tf.fd is None:
            # Closed (descriptor cap or ignore_older): it can only be read again if found by inode.
            path = find_by_inode(directory, tf.dev, tf.ino, hint)
            if path is not None and self._same_content(tf, path):
                fd = self.open_fd(path)
                if fd is not None:
                    tf.path = path
                    tf.attach(fd)
                    self._mark_rotated(tf)
                    return
            self._release_closed(tf)
            return
        try:
            deleted = os.fstat(tf.fd).st_nlink == 0
        except OSError:
            deleted = True
        if deleted:
            tf.deleted = True
        else:
            new_path = find_by_inode(directory, tf.dev, tf.ino, hint)
            if new_path is not None:
                tf.path = new_path
        self._mark_rotated(tf)

    def _mark_rotated(self, tf: TailedFile) -> None:
        if tf.rotated:
            return
        tf.rotated = True
        tf.wants_read = True
        tf.last_growth = time.monotonic()
        self.counters.rotations += 1
        self.version += 1
        self.log.info(
            "file rotated; reading it to its end",
            extra=kv(file=tf.source, now_at="(deleted)" if tf.deleted else tf.path, unread_bytes=tf.size - tf.read_pos),
        )

    def _release_closed(self, tf: TailedFile) -> None:
        unread = tf.size - tf.read_pos
        if unread > 0:
            self.counters.lost_bytes += unread
            self.log.warning(
                "a closed file was renamed or deleted before its end was read; its tail is lost",
                extra=kv(file=tf.path, unread_bytes=unread),
            )
        self._forget(tf)
        if tf.holding:
            self.finishing.append(tf)

    def _holds(self, path: str, tf: TailedFile) -> bool:
        """Whether `path` is the name `tf` is watched under."""
        return id(self.by_path.get(path)) == id(tf)

    def _tracks(self, tf: TailedFile) -> bool:
        return id(self.files.get(tf.key)) == id(tf)

    def _forget(self, tf: TailedFile) -> None:
        self.version += 1
        if self._tracks(tf):
            del self.files[tf.key]
        if self._holds(tf.path, tf):
            del self.by_path[tf.path]
        self.polled.discard(tf.key)
        self.waiting_room.discard(tf.key)

    def check(self, tf: TailedFile) -> TailedFile | None:
        """Before reading a file that had reached its end: still the same content? Returns the file to read."""
        assert tf.fd is not None
        try:
            st = os.fstat(tf.fd)
        except OSError:
            return tf
        tf.size = st.st_size
        if st.st_nlink == 0 and not tf.deleted:
            tf.deleted = True
            if not tf.rotated:
                self._lost_name(tf)
        if st.st_size < tf.read_pos:
            return self._truncated(tf, st)
        if not self.extend_fingerprint(tf, st.st_size):
            return self._truncated(tf, st)  # its first bytes changed: truncated and rewritten past our offset
        return tf

    def extend_fingerprint(self, tf: TailedFile, size: int) -> bool:
        """Check the fingerprint, and extend it while the file is shorter than fingerprint_bytes; False if changed."""
        assert tf.fd is not None
        fingerprint = tf.fingerprint
        if not still_matches(tf.fd, fingerprint):
            return False
        if fingerprint.length < self.config.fingerprint_bytes and size > fingerprint.length:
            tf.fingerprint = take_fingerprint(tf.fd, size, self.config.fingerprint_bytes)
            if fingerprint.length == 0:
                # Its first bytes: until they are checkpointed the file is known by inode only (an empty
                # fingerprint matches anything), so a copytruncate while we are down would go unnoticed.
                self.version += 1
        return True

    def _truncated(self, tf: TailedFile, st: os.stat_result) -> TailedFile | None:
        """copytruncate (or any truncation): the old content continues in its copy if found; the file starts over."""
        assert tf.fd is not None
        self.counters.truncations += 1
        fd = tf.fd
        tf.fd = None
        self._forget(tf)
        fresh = TailedFile(
            self.shared,
            tf.path,
            tf.dev,
            tf.ino,
            take_fingerprint(fd, st.st_size, self.config.fingerprint_bytes),
            0,
            fields=tf.fields,
            source=tf.source,
        )
        fresh.size = st.st_size
        fresh.attach(fd)
        fresh.wants_read = True
        self.files[fresh.key] = fresh
        self.version += 1
        if not tf.rotated:
            self.by_path[tf.path] = fresh
        if tf.key in self.polled or tf.rotated:
            self.polled.add(fresh.key)
        copy = find_copy(os.path.dirname(tf.path), tf.fingerprint, tf.read_pos, {tf.key})
        read_elsewhere = False
        if copy is not None:
            path, copy_fd, copy_st = copy
            already = self.files.get((copy_st.st_dev, copy_st.st_ino))
            if already is not None and already.read_pos == 0:
                self._forget(already)  # matched by include too, but not read yet: the copy continues the old one
                already.close()
            if already is None or already.read_pos == 0:
                tf.path, tf.dev, tf.ino = path, copy_st.st_dev, copy_st.st_ino
                tf.size = copy_st.st_size
                tf.attach(copy_fd)
                tf.rotated = True
                tf.wants_read = True
                tf.last_growth = time.monotonic()
                self.files[tf.key] = tf
                self.log.info(
                    "file truncated (copytruncate); reading the rest of the old content from its copy",
                    extra=kv(
                        file=fresh.path, copy=path, offset=tf.read_pos, unread_bytes=copy_st.st_size - tf.read_pos
                    ),
                )
                return fresh
            os.close(copy_fd)
            read_elsewhere = True  # the copy is watched under its own name (read from its start)
        unread = 0 if read_elsewhere else max(0, tf.size - tf.read_pos)
        if unread:
            self.counters.lost_bytes += unread
        self.log.warning(
            "file truncated; reading it again from the start",
            extra=kv(file=fresh.path, read_up_to=tf.read_pos, unread_bytes_lost=unread),
        )
        if tf.holding:
            self.finishing.append(tf)
        return fresh

    # ----------------------------------------------------------------- descriptors

    def reopen(self, tf: TailedFile) -> bool:
        """Open a closed file again by its name, if the name still holds it; False if it cannot be read now."""
        if not self._make_room(keep=tf):
            self.waiting_room.add(tf.key)
            return False
        fd = self.open_fd(tf.path)
        if fd is None:
            return False
        st = _holds(fd, tf)
        if st is None:
            os.close(fd)
            self._lost_name(tf)
            self.refresh(tf.path)
            return False
        tf.attach(fd)
        tf.size = st.st_size
        return True

    def _make_room(self, keep: TailedFile) -> bool:
        """Close the longest-idle fully read files while more than max_open_files are open (or would be)."""
        limit = self.config.max_open_files
        opened = [tf for tf in self.files.values() if tf.fd is not None and tf is not keep]
        excess = len(opened) + 1 - limit
        if excess <= 0:
            return True
        idle = sorted(
            (tf for tf in opened if not tf.rotated and not tf.wants_read and tf.read_pos >= tf.size),
            key=lambda tf: tf.last_active,
        )
        for tf in idle[:excess]:
            tf.close()
        if len(idle) >= excess:
            return True
        if keep.fd is not None:
            keep.close()  # no room: it waits, closed, until another file can be closed
        keep.wants_read = False
        self.waiting_room.add(keep.key)
        return False

    def grant_room(self) -> None:
        """Files waiting for a descriptor may try again once one is free or can be freed."""
        if not self.waiting_room:
            return
        opened = [tf for tf in self.files.values() if tf.fd is not None]
        free = self.config.max_open_files - len(opened)
        free += sum(1 for tf in opened if not tf.rotated and not tf.wants_read and tf.read_pos >= tf.size)
        for key in list(self.waiting_room)[: max(0, free)]:
            self.waiting_room.discard(key)
            tf = self.files.get(key)
            if tf is not None:
                tf.wants_read = True

    def close_idle(self, now: float) -> None:
        """Close files idle longer than ignore_older (they are reopened when they grow)."""
        older = self.config.ignore_older
        if older is None:
            return
        for tf in self.files.values():
            if tf.fd is not None and not tf.rotated and not tf.wants_read and now - tf.last_active > older:
                tf.close()

    def poll(self) -> None:
        """fstat the files events do not cover: grown, truncated or deleted?"""
        for tf in list(self.files.values()):
            if not self._polled(tf) or tf.fd is None:
                continue
            try:
                st = os.fstat(tf.fd)
            except OSError:
                continue
            if st.st_size != tf.read_pos or st.st_size != tf.size:
                tf.wants_read = True
            tf.size = st.st_size
            if st.st_nlink == 0 and not tf.deleted:
                tf.deleted = True
                if not tf.rotated:
                    self._lost_name(tf)

    def grew(self, tf: TailedFile) -> bool:
        """Whether an open file has more bytes than were read (it then wants a read)."""
        if tf.fd is None:
            return False
        try:
            tf.size = os.fstat(tf.fd).st_size
        except OSError:
            return False
        if tf.size != tf.read_pos:
            tf.wants_read = True
            return True
        return False

    def release(self, tf: TailedFile) -> None:
        """A rotated file read to its end and idle for rotate_wait: close it; keep its checkpoint until acked."""
        self._forget(tf)
        tf.close()
        self.counters.files_released += 1
        self.retiring.append(tf)
        self.log.info("released rotated file", extra=kv(file=tf.path, read_bytes=tf.read_pos, deleted=tf.deleted))

    def drop_retired(self) -> bool:
        """Forget released files whose last batch was acknowledged; True if any was."""
        before = len(self.retiring)
        self.retiring = [tf for tf in self.retiring if tf.tracker.outstanding]
        return len(self.retiring) != before

    def close_all(self) -> None:
        for tf in self.files.values():
            tf.close()


def _names(path: str, key: Key) -> bool:
    """Whether `path` still names the file with this device + inode."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == key
