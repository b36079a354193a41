"""`file`: tails log files matched by glob patterns, with checkpoints, rotation and at-least-once restarts.

A restart resumes from the last checkpoint, which only ever holds acknowledged offsets: nothing acknowledged
is lost, and what was read after it is read (and sent) again (docs/delivery.md, "At-least-once, end to end").

Design note (the details live in `filetail/`, one module per concern).

- Discovery: filesystem events (watchdog/inotify on each pattern's base directory)
  and a full glob scan every `glob_interval` that catches whatever events miss. With
  `use_events: false`, or where events are unavailable, the scan and a poll of open
  files every `poll_interval` do the job. Files events do not cover (rotated files,
  links into unwatched directories) are polled. With events working and nothing to
  read, the input sleeps until an event, the next scan or a held record's timeout.
- Reading: one task reads every file in turn, one chunk (1 MiB) per file per round,
  in a worker thread (`os.pread`; a slow disk stalls only this input). A chunk is
  decoded and split once and becomes one batch. `await ctx.emit` waits while
  downstream is full: backpressure stops reading.
- Acknowledgements: each batch carries an ack token of its file's own `AckTracker`;
  when every earlier batch of that file is durable or delivered, the file's
  `committed` offset advances. Checkpoints (`filetail/checkpoints.py`) are written
  from committed offsets only, at most once per `CHECKPOINT_INTERVAL`, at once when a
  file appears, is rotated or released, and once more on stop and after the pipeline
  has drained.
- Rotation, truncation, identity, the descriptor cap: `filetail/files.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from typing import Any, ClassVar

from collector.api import ComponentContext, Input, InputContext
from collector.checkpoint import CheckpointError
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter, kv
from collector_plugins.inputs.filetail.checkpoints import CheckpointStore, FileCheckpoint
from collector_plugins.inputs.filetail.config import FileInputConfig, MultilineConfig
from collector_plugins.inputs.filetail.files import FileSet
from collector_plugins.inputs.filetail.globs import GlobSet
from collector_plugins.inputs.filetail.tailed import READ_SIZE, Counters, Shared, TailedFile
from collector_plugins.inputs.filetail.watcher import EventWatcher

__all__ = ["FileInput", "FileInputConfig", "MultilineConfig"]

CHECKPOINT_INTERVAL = 1.0
"""Seconds between checkpoint writes while acknowledgements arrive."""


def load_line_format(name: str, max_message_bytes: int) -> Any:
    """The `docker` / `cri` line format, imported only when configured (another module provides them)."""
    from collector_plugins.common.container_formats import FORMATS

    return FORMATS[name](max_message_bytes=max_message_bytes)


class FileInput(Input):
    type_name: ClassVar[str] = "file"
    description: ClassVar[str] = "Tails log files matched by glob patterns, surviving rotation and restarts."
    Config: ClassVar[type[FileInputConfig]] = FileInputConfig
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: FileInputConfig

    def __init__(self, config: FileInputConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.stats = Counters()
        self.globs = GlobSet(config.include, config.exclude)
        self._limiter = RepeatLimiter()
        line_format = load_line_format(config.format, config.max_line_bytes) if config.format != "raw" else None
        self.shared = Shared(
            config,
            ctx.host.host,
            self.stats,
            ctx.loss,
            self._on_commit,
            self._on_truncated_line,
            line_format,
        )
        self.watcher: EventWatcher | None = None
        self.files = FileSet(self.shared, self.globs, self.log, self.source_fields, self._covered, self._limiter)
        self._store: CheckpointStore | None = None
        self._entries: list[FileCheckpoint] = []
        self._dirty = asyncio.Event()
        self._urgent = asyncio.Event()
        self._save_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._reading: asyncio.Future[bytes] | None = None
        self._rescan = False
        self._started = False
        self.scanned = asyncio.Event()
        """Set once the files present at start have been matched against the checkpoint."""

    # ----------------------------------------------------------------- hooks for subclasses

    def source_fields(self, path: str) -> dict[str, Any]:
        """Fields added to every record read from `path`; called once when the file is first opened."""
        return {}

    def refresh_source_fields(self, fields_of: Callable[[str], dict[str, Any]]) -> None:
        """Give every watched file the fields `fields_of(source)` from its next chunk on (facts learnt late).

        A new dict each, never an update in place: records already emitted share the old one.
        """
        for tf in self.files.files.values():
            tf.fields = fields_of(tf.source)

    # ----------------------------------------------------------------- figures

    def counters(self) -> dict[str, float]:
        s, files = self.stats, self.files
        return {
            "files_watched": len(files.files),
            "files_open": files.open_count,
            "files_rotated": sum(1 for tf in files.files.values() if tf.rotated),
            "lines": s.lines,
            "bytes": s.bytes,
            "truncated_lines": s.truncated_lines,
            "invalid_bytes": s.invalid_bytes,
            "parse_errors": s.parse_errors,
            "messages_split": s.messages_split,
            "rotations": s.rotations,
            "truncations": s.truncations,
            "stale_checkpoints": s.stale_checkpoints,
            "files_released": s.files_released,
            "open_errors": s.open_errors,
            "lost_bytes": s.lost_bytes,
            "multiline_orphans": s.multiline_orphans,
            "multiline_overflows": s.multiline_overflows,
            "multiline_not_text": s.multiline_not_text,
            "unread_bytes": sum(max(0, tf.size - tf.committed) for tf in files.files.values()),
        }

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._store = CheckpointStore(self.ctx.state_dir(), self.ctx.checkpoint_failed)
        try:
            entries, bad = await asyncio.to_thread(self._store.load)
        except CheckpointError as exc:
            self.log.error(
                "file input checkpoint unreadable; files without a position start per read_from",
                extra=kv(component=self.ctx.name, error=str(exc)),
            )
            entries, bad = [], 0
        if bad:
            self.log.warning("skipped unreadable checkpoint entries", extra=kv(component=self.ctx.name, entries=bad))
        self._entries = entries
        self._started = True

    async def stop(self) -> None:
        if self._reading is not None:
            # The descriptor being read is closed only once the worker thread is done with it.
            await asyncio.wait([self._reading], timeout=5)
        if self.watcher is not None:
            watcher, self.watcher = self.watcher, None
            await asyncio.to_thread(watcher.stop)
        await self._save()
        self.files.close_all()

    async def drained(self) -> None:
        await self._save()

    # ----------------------------------------------------------------- the loop

    async def run(self, ctx: InputContext) -> None:
        if not self._started:
            await self.start()
        loop = asyncio.get_running_loop()
        cfg = self.config
        if cfg.use_events:
            self.watcher = EventWatcher(loop, self.globs.watch_roots(), self._wake.set, self.log)
            await asyncio.to_thread(self.watcher.start)
        self.files.events_ok = self.watcher is not None and not self.watcher.failed
        scan = await asyncio.to_thread(self.globs.scan)
        self.files.restore(self._entries, scan)
        self._entries = []
        self.scanned.set()
        self._dirty.set()  # the first checkpoint records where every file starts
        saver = asyncio.create_task(self._saver())
        stop_watch = asyncio.ensure_future(ctx.stopping.wait())
        stop_watch.add_done_callback(lambda _: self._wake.set())
        now = time.monotonic()
        next_scan, next_poll = now + cfg.glob_interval, now + cfg.poll_interval
        version = self.files.version
        try:
            while not ctx.stopping.is_set():
                self._apply_events()
                now = time.monotonic()
                if now >= next_scan or self._rescan:
                    await self._scan()
                    next_scan = time.monotonic() + cfg.glob_interval
                if now >= next_poll:
                    self.files.poll()
                    next_poll = now + cfg.poll_interval
                progressed = await self._read_round(ctx)
                self.files.grant_room()
                now = time.monotonic()
                await self._emit_due(ctx, now)
                await self._release_rotated(ctx, now)
                self.files.close_idle(now)
                if self.files.drop_retired():
                    self._dirty.set()
                if self.files.version != version:
                    # A file appeared, was rotated or released: record it now, not within a second. Should
                    # the process die, a file the checkpoint never saw could be rotated away unseen.
                    version = self.files.version
                    self._urgent.set()
                    self._dirty.set()
                if progressed or any(tf.wants_read for tf in self.files.files.values()):
                    await asyncio.sleep(0)  # emit only suspends when a channel is full: let others run
                    continue
                await self._idle(ctx, self._next_wake(next_scan, next_poll, now))
        finally:
            stop_watch.cancel()
            saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await saver

    def _next_wake(self, next_scan: float, next_poll: float, now: float) -> float:
        deadline = next_scan
        if self.files.needs_poll():
            deadline = min(deadline, next_poll)
        for tf in self.files.files.values():
            due = tf.next_deadline()
            if due is not None:
                deadline = min(deadline, due)
            if tf.rotated and tf.fd is not None:  # to be released (a closed one waits for a descriptor)
                deadline = min(deadline, tf.last_growth + self.config.rotate_wait)
        return max(0.0, deadline - now)

    async def _idle(self, ctx: InputContext, timeout: float) -> None:
        if ctx.stopping.is_set() or self._wake.is_set():
            self._wake.clear()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    def _covered(self, real_path: str) -> bool:
        return self.watcher is not None and self.watcher.covers(real_path)

    def _apply_events(self) -> None:
        watcher = self.watcher
        if watcher is None:
            return
        files, globs = self.files, self.globs
        for change in watcher.take():
            if change.is_dir:
                self._rescan = True  # a new directory may hold matching files: scan it
            elif change.dest is not None:
                files.refresh(change.path, hint=change.dest)
                files.refresh(change.dest)  # also follows a rotated file to its next name
            elif change.path in files.by_path or globs.matches(change.path):
                files.refresh(change.path)  # other files in watched directories cost no stat

    async def _scan(self) -> None:
        self._rescan = False
        watcher = self.watcher
        if watcher is not None:
            await asyncio.to_thread(watcher.schedule_missing)
            self.files.events_ok = not watcher.failed
        scan = await asyncio.to_thread(self.globs.scan)
        self.files.reconcile(scan)

    async def _read_round(self, ctx: InputContext) -> bool:
        """One chunk from each file that may have data; True if anything was read."""
        progressed = False
        for tf in self.files.to_read():
            if ctx.stopping.is_set():
                break
            if tf.fd is None and not self.files.reopen(tf):
                tf.wants_read = False
                continue
            current = self.files.check(tf)
            if current is not tf:
                await self._finish_detached(ctx)
                continue  # truncated: read again next round, from the right file
            assert tf.fd is not None
            self._reading = asyncio.ensure_future(asyncio.to_thread(os.pread, tf.fd, READ_SIZE, tf.read_pos))
            try:
                data = await self._reading
            except OSError as exc:
                self._read_failed(tf, exc)
                continue
            finally:
                self._reading = None
            if not data:
                tf.wants_read = False
                continue
            progressed = True
            records, nbytes = tf.process(data, time.monotonic())
            tf.wants_read = len(data) == READ_SIZE
            await self._emit(ctx, tf, records, nbytes)
        return progressed

    async def _emit(self, ctx: InputContext, tf: TailedFile, records: list[dict[str, Any]], nbytes: int) -> None:
        if records:
            await ctx.emit(Batch(LOGS, records, nbytes, ack=tf.token()))
        else:
            tf.advance()

    def _read_failed(self, tf: TailedFile, exc: OSError) -> None:
        tf.wants_read = False
        now, _first, suppressed = self._limiter.check("read", tf.path)
        if now:
            self.log.warning(
                "cannot read file; trying again when it changes",
                extra=kv(
                    component=self.ctx.name,
                    file=tf.path,
                    error=exc.strerror or str(exc),
                    repeats_suppressed=suppressed,
                ),
            )

    async def _finish_detached(self, ctx: InputContext) -> None:
        now = time.monotonic()
        while self.files.finishing:
            tf = self.files.finishing.pop(0)
            await self._emit(ctx, tf, tf.finish(now), 0)

    async def _emit_due(self, ctx: InputContext, now: float) -> None:
        await self._finish_detached(ctx)
        for tf in list(self.files.files.values()):
            due = tf.next_deadline()
            if due is not None and due <= now:
                await self._emit(ctx, tf, tf.flush_due(now), 0)

    async def _release_rotated(self, ctx: InputContext, now: float) -> None:
        wait = self.config.rotate_wait
        for tf in list(self.files.files.values()):
            if not tf.rotated or tf.fd is None or tf.wants_read:
                continue
            if tf.read_pos < tf.size:
                tf.wants_read = True  # known to be longer than what was read: read it first
                continue
            if now - tf.last_growth < wait:
                continue
            if self.files.grew(tf):  # a last look before letting go
                continue
            await self._emit(ctx, tf, tf.finish(now), 0)
            self.files.release(tf)

    def _on_truncated_line(self, tf: TailedFile) -> None:
        now, _first, suppressed = self._limiter.check("truncated_line", self.ctx.name)
        if now:
            self.log.warning(
                "line longer than max_line_bytes was truncated (each one is counted in the loss ledger)",
                extra=kv(
                    component=self.ctx.name,
                    file=tf.source,
                    max_line_bytes=self.config.max_line_bytes,
                    repeats_suppressed=suppressed,
                ),
            )

    # ----------------------------------------------------------------- checkpoints

    def _on_commit(self, tf: TailedFile) -> None:
        self._dirty.set()

    async def _saver(self) -> None:
        while True:
            await self._dirty.wait()
            self._urgent.clear()
            await self._save()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._urgent.wait(), CHECKPOINT_INTERVAL)

    async def _save(self) -> None:
        if self._store is None or not self._dirty.is_set():
            return
        async with self._save_lock:
            self._dirty.clear()
            entries = self.files.checkpoint_entries()
            try:
                await asyncio.to_thread(self._store.save, entries)
            except OSError as exc:
                self._dirty.set()
                now, _first, _suppressed = self._limiter.check("checkpoint", self.ctx.name)
                if now:
                    self.log.error(
                        "cannot write the file input checkpoint; positions are kept in memory and retried",
                        extra=kv(component=self.ctx.name, error=exc.strerror or str(exc)),
                    )
