"""The disk buffer: an append-only log of checksummed frames, one per output.

Design note.

Layout. The buffer's directory holds segment files `NNNNNNNNNNNNNNNNNNNN.seg`
(20-digit ids, increasing) and `ledger.json`. A segment is a sequence of frames
(24-byte header: magic, crc32, length, count, created_ms; then a msgpack
payload, see `segment` and `codec`). One frame is one pushed batch, or a part
of one: a batch whose frame would pass `min(segment_bytes, max_bytes // 2)` is
split in halves until each part fits; a single record whose frame passes
`max_bytes // 2` is dropped (`on_drop("too_large", 1)`). The writer appends
whole frames, with one `os.writev` each, to the last segment and starts a new
segment when the frame would take the current one past `segment_bytes`.
The ledger holds the committed position: (segment, offset) of the first frame
not yet acknowledged, replaced atomically (see `ledger`).

Invariants.
- Bytes on disk (the sum of segment sizes) never pass `max_bytes`: `push`
  waits (`block`) or drops (`drop_newest`) first. Space comes back a whole
  segment at a time, when everything in it is committed.
- A segment is unlinked only after a durable ledger points past it, so a crash
  between the two cannot leave a ledger that names a missing segment. One
  exception: when the disk is full (ENOSPC, EDQUOT) the new ledger may not fit
  either, so the segments it frees (everything in them is acknowledged) are
  unlinked first and the ledger written after. A crash in between leaves a
  ledger naming a missing segment; recovery then starts at the oldest segment
  left (duplicates, never loss).
- Order: units come out in append order; ids increase in delivery order and a
  rewind hands out the same frames again with the same ids (unless a file was
  damaged meanwhile). Data left by a previous run is older than anything this
  run appends, so it goes first.
- Acknowledgements may come in any order; the committed position advances over
  the longest acknowledged prefix (`ledger.CommitTracker`). What is after it
  (including units acknowledged out of order) is delivered again after a
  restart: at least once.
- Damage is skipped, reported (`on_corrupt`, one ERROR line naming segment and
  offset) and never stops delivery: the reader resynchronises on the next
  magic whose frame verifies. Start-up only verifies the last segment (see
  `recovery`), so a large backlog starts flowing at once.
- Units handed out directly from the in-memory tail (the last few frames
  written, when the reader has caught up) are indistinguishable from units read
  back: the frame is written first, the ids are the same, `ack` is None, and
  only batches whose encoding is exact (see `codec`) are kept there.

A disk that refuses writes (full, I/O errors). The failed frame is cut off
again (nothing half-written stays), the write is counted (`write_errors`) and,
with `block`, retried every `WRITE_RETRY_SECONDS` and whenever space comes
back, while the push (and with it the input) waits: nothing is lost. The
segment being written is sealed at the first failure: a segment is freed only
once sealed, and on a disk the buffer filled itself (`max_bytes` larger than
the filesystem) freeing delivered segments is the only way to get room back.
`drop_newest` drops the batch instead (`write_error`). Meanwhile `condition()`
reports `write_failing` (/readyz not ready); failures are logged as an ERROR at
most once per `FAILING_LOG_INTERVAL` (every one is counted), and the recovery
after a logged failure as INFO.

What a failure can cost, by `fsync` policy. An input's ack token is released
only once its batch is as durable as the policy promises, and inputs commit
their source positions from there.
- `always`: `push` returns after the frame (and a new segment's directory
  entry) is fsynced. Power loss and process crash lose nothing.
- `interval` (default): a background task fsyncs every `fsync_interval` and
  only then releases the tokens of the batches written before. Process crash:
  nothing lost (the kernel has the data). Power loss: up to `fsync_interval` of
  writes, none of them acknowledged to an input, so inputs that can re-read
  (files, journals) send them again; inputs that cannot (UDP, plain TCP) lose
  them.
- `never`: tokens are released right after the write. Process crash: nothing
  lost. Power loss: whatever the kernel had not written back yet (typically
  up to ~30 s).
In every policy the ledger is written (with fsync) when it changed, every
`fsync_interval` (sooner when a writer waits for room), and on close; a crash
can only make acknowledged units come again (up to `fsync_interval` of them),
never lose unacknowledged ones. A torn frame at the end of the last segment (a
crash mid-write) is cut off at start-up and reported as `torn_tail`; a power
loss can also tear the end of a segment sealed within the last interval, which
the reader reports (`corrupt_record`) and skips.

Code: `store.SegmentStore` is the synchronous core (segments, writer, reader,
committed position); this class adds waiting, the fsync policy, the background
fsync/ledger task and the lifecycle. `recovery` runs at `open()`;
`ledger.persist_then_unlink` frees segments; `intake.IntakeCondition` keeps
what `condition()` reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from collector.acks import release
from collector.buffer.backlog import BACKLOG_LOG_SECONDS, BacklogReport
from collector.buffer.base import Buffer, BufferClosedError, BufferCondition, DropCallback, Unit
from collector.buffer.codec import encode
from collector.buffer.intake import IntakeCondition
from collector.buffer.ledger import persist_then_unlink
from collector.buffer.recovery import recover
from collector.buffer.segment import HEADER_SIZE, segment_name
from collector.buffer.store import CorruptCallback, SegmentStore
from collector.checkpoint import fsync_directory
from collector.events import Batch
from collector.log import RepeatLimiter, kv

MIB = 1024 * 1024
MIN_MAX_BYTES = 64 * 1024
MIN_SEGMENT_BYTES = 4096
MAX_FRAME_BYTES = 1 << 31  # the length field is a u32; no frame comes near it
WRITE_RETRY_SECONDS = 1.0  # after a failed write (disk full, I/O error) in `block` mode
FAILING_LOG_INTERVAL = 60.0  # disk errors are logged at most this often (counted every time)


def default_segment_bytes(max_bytes: int) -> int:
    return min(max(max_bytes // 8, MIB), 64 * MIB)


@dataclass(slots=True)
class _Part:
    """A frame's worth of a pushed batch, encoded."""

    payload: bytes
    records: int
    batch: Batch | None  # the records as a reader may hand them out (None: the encoding is not exact)

    @property
    def size(self) -> int:
        return HEADER_SIZE + len(self.payload)


class DiskBuffer(Buffer):
    kind = "disk"

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        when_full: Literal["block", "drop_newest"],
        fsync: Literal["always", "interval", "never"] = "interval",
        fsync_interval: float = 1.0,
        segment_bytes: int | None = None,
        on_drop: DropCallback,
        log: logging.Logger,
        on_corrupt: CorruptCallback | None = None,
    ) -> None:
        if max_bytes < MIN_MAX_BYTES:
            raise ValueError(f"max_bytes must be at least {MIN_MAX_BYTES}")
        if when_full not in ("block", "drop_newest"):
            raise ValueError(f"when_full must be block or drop_newest, not {when_full!r}")
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"fsync must be always, interval or never, not {fsync!r}")
        if fsync_interval <= 0:
            raise ValueError("fsync_interval must be positive")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.when_full = when_full
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.segment_bytes = segment_bytes if segment_bytes is not None else default_segment_bytes(max_bytes)
        if self.segment_bytes < MIN_SEGMENT_BYTES:
            raise ValueError(f"segment_bytes must be at least {MIN_SEGMENT_BYTES}")
        self._frame_limit = min(self.segment_bytes, max_bytes // 2, MAX_FRAME_BYTES)  # larger batches are split
        self._record_limit = min(max_bytes // 2, MAX_FRAME_BYTES)  # a larger single record is dropped
        self._on_drop = on_drop
        self._on_corrupt = on_corrupt
        self._log = log
        self._store: SegmentStore | None = None
        self._closing = False  # no more push/pop
        self._finished = False  # closed: files released
        self._intake_closed = False
        self._close_task: asyncio.Task[None] | None = None
        self._next_unit_id = 1
        self._awaiting_sync: list[Any] = []  # ack tokens released by the next data fsync (interval)
        self._readers: list[asyncio.Future[None]] = []
        self._room_waiters: list[asyncio.Future[None]] = []
        self._write_lock = asyncio.Lock()
        self._sync_lock = asyncio.Lock()
        self._persist_lock = asyncio.Lock()  # one ledger writer at a time (they share the temporary file)
        self._kick = asyncio.Event()
        self._stopping = False
        self._flusher: asyncio.Task[None] | None = None
        self._persisted: bytes | None = None
        self._sync_failing = False
        self._ledger_failing = False
        self._intake = IntakeCondition(when_full)
        self._limiter = RepeatLimiter(FAILING_LOG_INTERVAL)  # disk errors: a line per interval at most
        self._write_error_logged = False  # an ERROR about writes was logged and its recovery not yet
        self.errors = {"write": 0, "fsync": 0, "ledger": 0}  # failed operations, since this object was made
        self.backlog_log_interval = BACKLOG_LOG_SECONDS
        self._backlog: BacklogReport | None = None  # what a previous run left, until drained

    # -- lifecycle ---------------------------------------------------------------------------------

    async def open(self) -> None:
        """Recover what a previous run left (see `recovery`) and start the fsync task."""
        if self._store is not None and not self._finished:
            raise RuntimeError("disk buffer is already open")
        if self._store is not None:  # reopened after close(): unit ids keep increasing
            self._next_unit_id = self._store.max_unit_id + 1
            self._store = None
        self._closing = self._finished = self._intake_closed = self._stopping = False
        self._close_task, self._persisted = None, None
        self._intake = IntakeCondition(self.when_full)
        self._awaiting_sync = []
        self._kick.clear()
        rec = await asyncio.to_thread(recover, self.directory, self._log)
        store = SegmentStore(
            self.directory,
            self.segment_bytes,
            rec,
            first_unit_id=self._next_unit_id,
            close_sealed_at_once=self.fsync == "never",
            log=self._log,
            on_corrupt=self._on_corrupt,
        )
        self._store = store
        self._backlog = None
        if rec.segments and store.pending:
            self._backlog = BacklogReport(rec, store.pending, self._log, self._kv, self.backlog_log_interval)
        elif rec.segments:
            self._log.info(
                "disk buffer resumed",
                extra=self._kv(segments=len(rec.segments), bytes=store.total, events=store.pending),
            )
        if self._on_corrupt is not None:
            for reason, events in rec.reports:
                self._on_corrupt(reason, events)
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"disk-buffer-fsync:{self.directory}")

    def close_intake(self) -> None:
        self._intake_closed = True
        self._wake(self._readers)

    async def close(self) -> None:
        """Make everything durable and release the files; idempotent, safe without open()."""
        if self._store is None:
            self._closing = self._finished = True
            return
        if self._finished:
            return
        if self._close_task is None:
            self._close_task = asyncio.create_task(self._close())
        # Shielded: a cancelled caller must not leave a thread fsyncing a descriptor that is then closed.
        await asyncio.shield(self._close_task)

    async def _close(self) -> None:
        store = self._opened()
        self._closing = True
        self._wake(self._readers)
        self._wake(self._room_waiters)
        async with self._write_lock:  # a push in progress finishes its write (and fsync)
            await self._stop_flusher()
            try:
                await self._sync_data()
                await self._persist_and_reclaim()
            except Exception:
                self._log.exception("disk buffer could not persist its state on close", extra=self._kv())
            store.close_files()
            self._finished = True

    async def _abort(self) -> None:
        """For tests: stop as a crashed process would (no final fsync, no ledger), then release the files."""
        self._closing = True
        self._wake(self._readers)
        self._wake(self._room_waiters)
        await self._stop_flusher()
        self._opened().close_files()
        self._finished = True

    async def _stop_flusher(self) -> None:
        self._stopping = True
        self._kick.set()
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None

    def _opened(self) -> SegmentStore:
        if self._store is None:
            raise RuntimeError("disk buffer is not open")
        return self._store

    # -- intake ------------------------------------------------------------------------------------

    async def push(self, batch: Batch) -> bool:
        """Store `batch`; False if records were dropped (buffer full, record too large, disk refusing writes)."""
        store = self._opened()
        if self._closing:
            raise BufferClosedError("disk buffer is closed")
        if self._intake_closed:
            raise BufferClosedError("push after close_intake()")
        token = batch.ack
        if not batch.records:
            release(token)
            return True
        parts, too_large = self._encode_parts(batch)
        if too_large:
            self._on_drop("too_large", too_large)
        if not parts:
            release(token)
            return False
        async with self._write_lock:
            if self._closing:
                raise BufferClosedError("disk buffer is closed")
            need = sum(p.size for p in parts)
            full = store.total + need > self.max_bytes
            if full:
                self._intake.full()
            if full and self.when_full == "drop_newest" and not await self._room_soon(need):
                self._on_drop("buffer_full", sum(p.records for p in parts))
                release(token)
                return False
            for i, part in enumerate(parts):
                if store.total + part.size > self.max_bytes:
                    await self._wait_for_room(part.size)
                if not await self._write(part):  # drop_newest, and the disk refuses writes
                    self._on_drop("write_error", sum(p.records for p in parts[i:]))
                    release(token)
                    return False
            if self.fsync == "always":
                await self._sync_data()
                release(token)
            elif self.fsync == "interval":
                if token is not None:
                    self._awaiting_sync.append(token)
            else:
                release(token)
        return not too_large

    def _encode_parts(self, batch: Batch) -> tuple[list[_Part], int]:
        """Frames for `batch` (halved while too large) and the number of records too large to store at all."""
        parts: list[_Part] = []
        dropped = 0

        def add(kind: Any, records: list[Any], nbytes: int) -> None:
            nonlocal dropped
            part_batch = Batch(kind, records, nbytes)
            payload, exact = encode(part_batch)
            size = HEADER_SIZE + len(payload)
            n = len(records)
            if size <= self._frame_limit or (n == 1 and size <= self._record_limit):
                parts.append(_Part(payload, n, part_batch if exact else None))
            elif n == 1:
                dropped += 1
                self._log.warning(
                    "disk buffer dropped a record larger than half the buffer",
                    extra=self._kv(record_bytes=size, limit_bytes=self._record_limit),
                )
            else:
                half = n // 2
                first = nbytes * half // n
                add(kind, records[:half], first)
                add(kind, records[half:], nbytes - first)

        add(batch.kind, batch.records, batch.nbytes)
        return parts, dropped

    async def _room_soon(self, need: int) -> bool:
        """drop_newest: whether removing committed segments makes room; if so, wait (bounded) for it."""
        store = self._opened()
        if store.total - store.reclaimable_bytes() + need > self.max_bytes:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_for_room(need), timeout=max(1.0, 2 * self.fsync_interval))
        return store.total + need <= self.max_bytes

    async def _wait_for_room(self, need: int) -> None:
        store = self._opened()
        while store.total + need > self.max_bytes:
            if self._closing:
                raise BufferClosedError("disk buffer closed while waiting for room")
            if store.writer.size:
                store.roll()  # the writer's segment can be freed only once it is sealed
            if store.reclaimable():
                self._kick.set()
            self._intake.full()
            await self._wait(self._room_waiters)

    async def _write(self, part: _Part) -> bool:
        """Append one frame; when the disk refuses, retry (block) or give up (drop_newest: False)."""
        store = self._opened()
        while True:
            try:
                store.append(part.payload, part.records, part.batch)
            except OSError as exc:
                self._write_failed(exc)
                if self.when_full == "drop_newest":
                    return False
                # Woken early when delivered segments are deleted (room), or by close().
                await self._wait(self._room_waiters, WRITE_RETRY_SECONDS)
                if self._closing:
                    raise BufferClosedError("disk buffer closed while writes were failing") from exc
                continue
            failed = self._intake.stored()
            if failed is not None and self._write_error_logged:
                self._write_error_logged = False
                self._log.info(
                    "disk buffer writes again",
                    extra=self._kv(failed_seconds=round(failed, 3), write_errors=self.errors["write"]),
                )
            self._wake(self._readers)
            return True

    def _write_failed(self, exc: OSError) -> None:
        """Count and report a refused write; seal the segment being written so that it can be freed."""
        store = self._opened()
        self.errors["write"] += 1
        error = f"{errno.errorcode.get(exc.errno or 0, 'OSError')}: {exc.strerror or exc}"
        failed = self._intake.failing(error)
        # Once per interval, however often writes fail and recover meanwhile (a disk that the buffer
        # keeps filling and freeing would otherwise log a pair of lines per segment).
        log_now, _first, suppressed = self._limiter.check("write")
        if log_now:
            self._write_error_logged = True
            self._log.error(
                "disk buffer cannot write; inputs are held back"
                if self.when_full == "block"
                else "disk buffer cannot write; new data is dropped",
                extra=self._kv(
                    segment=segment_name(store.writer.id),
                    error=error,
                    failed_seconds=round(failed, 3),
                    write_errors=self.errors["write"],
                    **({"repeats_suppressed": suppressed} if suppressed else {}),
                ),
            )
        if store.writer.size:
            # While it is the segment being written, nothing delivered from it can be freed: on a disk the
            # buffer filled itself, sealing it is what lets delivery give the space back.
            with contextlib.suppress(OSError):  # no room even for an empty file: tried again next failure
                store.roll()
        self._kick.set()  # persist the ledger and delete what is delivered, now

    # -- durability --------------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.fsync_interval)
            self._kick.clear()
            if self._stopping:
                break
            try:
                if self.fsync != "never":
                    # `always` too: a segment sealed by a failed write is closed (its space released)
                    # by a data sync, and no push may come to do one while the disk is full.
                    await self._sync_data()
                await self._persist_and_reclaim()
                self._report_backlog()
            except OSError as exc:
                if self._limiter.check("background")[0]:  # counted in `errors`, logged once per interval
                    self._ledger_failing = True
                    self._log.error(
                        "disk buffer cannot write its ledger; retrying (delivered data is not deleted meanwhile)",
                        extra=self._kv(error=exc.strerror or str(exc), ledger_errors=self.errors["ledger"]),
                    )
            except Exception:
                if self._limiter.check("background-bug")[0]:
                    self._ledger_failing = True
                    self._log.exception("disk buffer background sync failed; retrying", extra=self._kv())
            else:
                if self._ledger_failing:
                    self._ledger_failing = False
                    self._log.info("disk buffer background sync works again", extra=self._kv())

    def _report_backlog(self) -> None:
        store, backlog = self._store, self._backlog
        if store is None or backlog is None:
            return
        backlog.check((store.tracker.segment, store.tracker.offset), store.pending)
        if backlog.finished:
            self._backlog = None

    async def _sync_data(self) -> None:
        """fsync what was written (segments, new directory entries), then release the tokens waiting for it."""
        async with self._sync_lock:
            fds, sealed, sync_dir = self._opened().take_unsynced()
            tokens, self._awaiting_sync = self._awaiting_sync, []
            if fds or sync_dir:
                # Shielded: descriptors are closed only once the thread is done with them.
                await asyncio.shield(self._fsync_then_close(fds, sealed, sync_dir, tokens))
            else:
                for token in tokens:
                    token.release()

    async def _fsync_then_close(self, fds: list[int], sealed: list[int], sync_dir: bool, tokens: list[Any]) -> None:
        try:
            await asyncio.to_thread(_fsync_all, fds, self.directory if sync_dir else None)
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the data: never report these batches durable.
            # Their inputs do not commit them and read them again after a restart.
            self.errors["fsync"] += 1
            self._sync_failing = True
            self._log.error(
                "disk buffer fsync failed; data written since the last fsync may be lost",
                extra=self._kv(error=exc.strerror or str(exc), batches_not_acknowledged=len(tokens)),
            )
            return
        finally:
            for fd in sealed:
                with contextlib.suppress(OSError):
                    os.close(fd)
        if self._sync_failing:
            self._sync_failing = False
            self._log.info("disk buffer fsync works again", extra=self._kv())
        for token in tokens:
            token.release()

    async def _persist_and_reclaim(self) -> None:
        """Write the ledger if it changed, then delete the segments it no longer needs."""
        async with self._persist_lock:
            await self._persist_and_reclaim_locked()

    async def _persist_and_reclaim_locked(self) -> None:
        store = self._opened()
        data, doomed = store.ledger_data()
        if data == self._persisted and not doomed:
            return
        paths = [self.directory / segment_name(i) for i in doomed]
        ledger = None if data == self._persisted else data
        try:
            failed, error = await asyncio.shield(asyncio.to_thread(persist_then_unlink, self.directory, ledger, paths))
        except OSError:
            self.errors["ledger"] += 1
            raise
        self.errors["ledger"] += failed
        if doomed:
            store.forget(doomed)
            self._wake(self._room_waiters)
        if error is not None:
            raise error
        self._persisted = data

    # -- delivery ----------------------------------------------------------------------------------

    async def pop(self) -> Unit | None:
        while True:
            unit = self.pop_nowait()
            if unit is not None:
                return unit
            store = self._store
            if store is None or self._closing or (self._intake_closed and store.caught_up()):
                return None
            await self._wait(self._readers)

    def pop_nowait(self) -> Unit | None:
        """The next unit if one is stored and not handed out yet; None otherwise (never waits)."""
        store = self._store
        if store is None or self._closing:
            return None
        unit = store.next_unit()
        if self._room_waiters and store.reclaimable():
            self._kick.set()  # damaged data skipped may have freed a segment
        return unit

    def ack(self, unit: Unit) -> None:
        store = self._store
        if store is None or self._finished:
            return  # the unit comes again after the next open()
        if store.ack(unit.id) and self._room_waiters and store.reclaimable():
            self._kick.set()  # a writer waits for room: persist the ledger and delete now

    def rewind(self) -> None:
        if self._store is not None and not self._closing:
            self._store.rewind()

    # -- figures -----------------------------------------------------------------------------------

    @property
    def pending_events(self) -> int:
        return self._store.pending if self._store is not None else 0

    def metrics(self) -> dict[str, float]:
        store = self._store
        age = 0.0
        if store is not None and store.pending and not self._finished:
            created = store.oldest_created_ms()
            if created:
                age = max(0.0, time.time() - created / 1000)
        return {
            "bytes": float(store.total if store is not None else 0),
            "events": float(self.pending_events),
            "oldest_age_seconds": age,
            "segments": float(len(store.segments) if store is not None else 0),
            "max_bytes": float(self.max_bytes),
            "write_errors": float(self.errors["write"]),
            "fsync_errors": float(self.errors["fsync"]),
            "ledger_errors": float(self.errors["ledger"]),
        }

    def condition(self) -> BufferCondition:
        return self._intake.condition(self.pending_events)

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    async def _wait(waiters: list[asyncio.Future[None]], timeout: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        waiters.append(fut)
        handle = loop.call_later(timeout, _set_once, fut) if timeout is not None else None
        try:
            await fut
        finally:
            if handle is not None:
                handle.cancel()
            if fut in waiters:
                waiters.remove(fut)

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        waiters.clear()

    def _kv(self, **fields: Any) -> dict[str, Any]:
        return kv(directory=str(self.directory), **fields)


def _set_once(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _fsync_all(fds: list[int], directory: Path | None) -> None:
    for fd in fds:
        os.fsync(fd)
    if directory is not None:
        fsync_directory(directory)
