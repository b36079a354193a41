"""Filesystem events (watchdog: inotify on Linux) bridged to the event loop.

The observer runs in watchdog's own thread. Its handler only records which paths
changed (deduplicated, so a burst of writes to one file is one entry) and, when
the record was empty, wakes the loop once with `loop.call_soon_threadsafe`; the
input drains the record on its own thread. Nothing else crosses threads.

Each include pattern's base directory is watched (recursively when the pattern can
match below it). A base directory that does not exist yet is scheduled again at
each scan until it does. If watches cannot be added at all (no inotify, its limits
reached), `failed` is set and the input falls back to polling: new files are then
found by the glob scan and growth by `poll_interval`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from collector.log import kv

_WANTED = ("created", "modified", "moved", "deleted")


class Change:
    __slots__ = ("dest", "is_dir", "path")

    def __init__(self, path: str, dest: str | None, is_dir: bool) -> None:
        self.path = path
        self.dest = dest
        self.is_dir = is_dir


class EventWatcher:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        roots: list[tuple[str, bool]],
        wake: Callable[[], None],
        log: logging.Logger,
    ) -> None:
        self.loop = loop
        self.roots = roots
        self.wake = wake
        self.log = log
        self.failed = False
        self._observer: Any = None
        self._scheduled: dict[str, bool] = {}  # real path of a watched root -> recursive
        self._lock = threading.Lock()
        self._changes: dict[tuple[str, str | None, bool], None] = {}

    # ----------------------------------------------------------------- watchdog's thread

    def _record(self, event: Any) -> None:
        if event.event_type not in _WANTED:
            return
        dest = os.fsdecode(event.dest_path) if event.event_type == "moved" and event.dest_path else None
        key = (os.fsdecode(event.src_path), dest, bool(event.is_directory))
        with self._lock:
            first = not self._changes
            self._changes[key] = None
        if first:
            try:
                self.loop.call_soon_threadsafe(self.wake)
            except RuntimeError:
                pass  # the loop is closed: the input has stopped

    # ----------------------------------------------------------------- blocking calls (run in a worker thread)

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                watcher._record(event)

        self._handler = Handler()
        try:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        except Exception as exc:  # no inotify in this environment
            self._fail(exc)
            return
        self.schedule_missing()

    def schedule_missing(self) -> None:
        """Watch the roots not watched yet (created since), unless watching failed for good."""
        if self.failed or self._observer is None:
            return
        from watchdog.events import (
            DirCreatedEvent,
            DirDeletedEvent,
            DirMovedEvent,
            FileCreatedEvent,
            FileDeletedEvent,
            FileModifiedEvent,
            FileMovedEvent,
        )

        wanted = [
            FileCreatedEvent,
            FileModifiedEvent,
            FileMovedEvent,
            FileDeletedEvent,
            DirCreatedEvent,
            DirMovedEvent,
            DirDeletedEvent,
        ]
        for root, recursive in self.roots:
            real = os.path.realpath(root)
            if real in self._scheduled or not os.path.isdir(root):
                continue
            try:
                self._observer.schedule(self._handler, root, recursive=recursive, event_filter=wanted)
            except FileNotFoundError:
                continue  # removed meanwhile: next scan
            except OSError as exc:
                self._fail(exc)
                return
            self._scheduled[real] = recursive

    def _fail(self, exc: BaseException) -> None:
        self.failed = True
        self.log.warning(
            "filesystem events unavailable; finding and following files by polling",
            extra=kv(error=f"{type(exc).__name__}: {exc}"),
        )

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            try:
                observer.stop()
                observer.join(timeout=5)
            except Exception as exc:
                self.log.warning("filesystem watcher did not stop cleanly", extra=kv(error=str(exc)))

    # ----------------------------------------------------------------- the loop's thread

    def take(self) -> list[Change]:
        with self._lock:
            changes, self._changes = self._changes, {}
        return [Change(path, dest, is_dir) for path, dest, is_dir in changes]

    def covers(self, real_path: str) -> bool:
        """Whether events are reported for a file at this real path (its directory is watched)."""
        if self.failed:
            return False
        directory = os.path.dirname(real_path)
        for root, recursive in self._scheduled.items():
            if directory == root or (recursive and directory.startswith(root.rstrip("/") + "/")):
                return True
        return False
