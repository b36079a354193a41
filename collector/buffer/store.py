"""The synchronous core of the disk buffer: segments, writer, reader and committed position.

No asyncio here: `DiskBuffer` (see its design note) decides when to wait, when
to fsync and what runs in a thread; this class keeps the state consistent and
does the cheap, non-blocking file work (appending a frame with one `writev`,
reading frames with `pread`, creating a segment).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from collector.buffer.base import Unit
from collector.buffer.codec import CodecError, decode_batch
from collector.buffer.ledger import CommitTracker, InFlight, LedgerState
from collector.buffer.recovery import Recovered
from collector.buffer.segment import HEADER_SIZE, Frame, SegmentReader, frame_header, open_reader, segment_name
from collector.events import Batch
from collector.log import kv
from collector.private_files import open_private

TAIL_FRAMES = 8  # frames kept in memory for a reader that has caught up with the writer

CorruptCallback = Callable[[str, int], None]


@dataclass(slots=True)
class Segment:
    id: int
    size: int  # bytes of whole frames in the file
    records: int  # records in those frames (figures)
    sealed: bool  # no more appends


@dataclass(slots=True)
class _TailEntry:
    segment: int
    offset: int
    end: int
    records: int
    created_ms: int
    batch: Batch


class SegmentStore:
    """Append frames, hand them out in order, commit the acknowledged prefix.

    Positions are (segment id, byte offset). The reader is never behind the
    committed position and never ahead of the writer; only segments entirely
    before the committed position may be deleted (`doomed`), which the caller
    does after persisting the ledger that `ledger_data` describes.
    """

    def __init__(
        self,
        directory: Path,
        segment_bytes: int,
        recovered: Recovered,
        *,
        first_unit_id: int,
        close_sealed_at_once: bool,
        log: logging.Logger,
        on_corrupt: CorruptCallback | None,
    ) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self._close_sealed_at_once = close_sealed_at_once  # fsync "never": nothing will fsync a sealed segment
        self._log = log
        self._on_corrupt = on_corrupt
        rec = recovered
        self.segments: dict[int, Segment] = {f.id: Segment(f.id, f.size, f.records, True) for f in rec.segments}
        self.total = sum(f.size for f in rec.segments)  # bytes on disk
        self.pending = rec.pending  # records not committed yet
        self.writer = Segment(rec.writer_id, 0, 0, False)
        self.segments[rec.writer_id] = self.writer
        self.seg_ids = sorted(self.segments)
        self._wfd = rec.writer_fd
        # What the next data sync must cover.
        self.dirty = False  # the writer's segment has unsynced writes
        self.unsynced: list[int] = []  # descriptors of sealed segments: fsync, then close
        self.dir_dirty = True  # a segment was created (its directory entry is not durable yet)
        self._tail: deque[_TailEntry] = deque(maxlen=TAIL_FRAMES)
        self.tracker = CommitTracker(rec.commit_segment, rec.commit_offset, rec.events_before, first_unit_id)
        self._rseg, self._roff = rec.commit_segment, rec.commit_offset
        self._reader: SegmentReader | None = None
        self._reader_seg = -1
        self._next_id = first_unit_id
        self.max_unit_id = first_unit_id - 1
        self._reported: set[tuple[int, int]] = set()
        self._normalize_commit()

    # -- writer ------------------------------------------------------------------------------------

    def append(self, payload: bytes, records: int, batch: Batch | None) -> None:
        """Append one frame (rolling first if it would take the segment past `segment_bytes`).

        `batch` is what a caught-up reader may hand out instead of decoding the frame (None: read it back).
        On an OSError nothing is left of the frame in the file, and the error is raised.
        """
        size = HEADER_SIZE + len(payload)
        seg = self.writer
        if seg.size and seg.size + size > self.segment_bytes:
            self.roll()
            seg = self.writer
        created_ms = int(time.time() * 1000)
        header = frame_header(payload, records, created_ms)
        try:
            written = os.writev(self._wfd, [header, payload])
            if written < size:  # only on an error condition: finish, or get the error
                rest = memoryview(header + payload)[written:]
                while rest:
                    rest = rest[os.write(self._wfd, rest) :]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._wfd, seg.size)
            raise
        offset = seg.size
        seg.size += size
        seg.records += records
        self.total += size
        self.pending += records
        self.dirty = True
        if batch is not None:
            self._tail.append(_TailEntry(seg.id, offset, seg.size, records, created_ms, batch))

    def roll(self) -> None:
        """Seal the writer's segment and start the next one."""
        old = self.writer
        new_id = old.id + 1
        fd = open_private(self.directory / segment_name(new_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
        old.sealed = True
        if self._close_sealed_at_once:
            os.close(self._wfd)
        else:
            self.unsynced.append(self._wfd)  # a data sync in progress may be fsyncing it right now
        self._wfd, self.dirty, self.dir_dirty = fd, False, True
        self.writer = Segment(new_id, 0, 0, False)
        self.segments[new_id] = self.writer
        self.seg_ids.append(new_id)
        self._normalize_commit()

    def take_unsynced(self) -> tuple[list[int], list[int], bool]:
        """For a data sync: (descriptors to fsync, of which sealed ones to close afterwards, fsync the directory)."""
        sealed, self.unsynced = self.unsynced, []
        fds = [*sealed, self._wfd] if self.dirty else sealed
        sync_dir = self.dir_dirty
        self.dirty = self.dir_dirty = False
        return fds, sealed, sync_dir

    def reclaimable(self) -> bool:
        """Whether some segment is entirely before the committed position (deletable once the ledger says so)."""
        return self.seg_ids[0] < self.tracker.segment

    def reclaimable_bytes(self) -> int:
        """Bytes that committed data holds: deletable segments, and the writer's if everything in it is committed."""
        tracker = self.tracker
        total = sum(s.size for s in self.segments.values() if s.id < tracker.segment)
        if tracker.segment == self.writer.id and tracker.offset == self.writer.size:
            total += self.writer.size
        return total

    # -- ledger ------------------------------------------------------------------------------------

    def ledger_data(self) -> tuple[bytes, list[int]]:
        """The ledger for the committed position, and the segments it no longer needs."""
        tracker = self.tracker
        state = LedgerState(
            tracker.segment,
            tracker.offset,
            tracker.events_before,
            {s.id: (s.size, s.records) for s in self.segments.values() if s.sealed and s.id >= tracker.segment},
        )
        return state.to_json(), [i for i in self.seg_ids if i < tracker.segment]

    def forget(self, doomed: list[int]) -> None:
        """`doomed` segments were unlinked."""
        for seg_id in doomed:
            self.total -= self.segments.pop(seg_id).size
        self.seg_ids[:] = [i for i in self.seg_ids if i in self.segments]
        if self._reader_seg not in self.segments:
            self._close_reader()  # its file is unlinked: let the space go

    # -- reader ------------------------------------------------------------------------------------

    def caught_up(self) -> bool:
        return self._rseg == self.writer.id and self._roff >= self.writer.size

    def next_unit(self) -> Unit | None:
        """The next unit in order; None when the reader has caught up with the writer."""
        while not self.caught_up():
            unit = self._read_one()
            if unit is not None:
                return unit
        return None

    def _read_one(self) -> Unit | None:
        """Hand out the frame at the read position; None if it only moved past a segment end or damage."""
        seg = self.segments.get(self._rseg)
        offset = self._roff
        if seg is None or offset >= seg.size:  # a sealed segment read to its end (and maybe deleted since)
            self._rseg = self.seg_ids[bisect.bisect_right(self.seg_ids, self._rseg)]
            self._roff = 0
            return None
        tail = self._tail
        while tail and (tail[0].segment, tail[0].offset) < (seg.id, offset):
            tail.popleft()
        if tail and tail[0].segment == seg.id and tail[0].offset == offset:
            entry = tail.popleft()
            return self._hand_out(entry.batch, entry.end, entry.records, entry.created_ms)
        try:
            reader = self._reader_for(seg.id)
        except FileNotFoundError:
            self._skip(offset, seg.size, 0, "segment file missing")
            return None
        frame = reader.read_frame(offset, seg.size)
        if isinstance(frame, Frame):
            try:
                batch = decode_batch(frame.payload)
            except CodecError as exc:
                self._skip(offset, frame.end, frame.count, str(exc))
                return None
            return self._hand_out(batch, frame.end, frame.count, frame.created_ms)
        self._skip(offset, reader.resync(offset + 1, seg.size), frame.count, frame.reason)
        return None

    def _hand_out(self, batch: Batch, end: int, records: int, created_ms: int) -> Unit:
        unit_id = self._next_id
        self._next_id += 1
        self.max_unit_id = max(self.max_unit_id, unit_id)
        # The frame's place and write time: stable across restarts, unique even if the directory is recreated.
        origin = f"{created_ms:011x}-{self._rseg:x}-{self._roff:x}"
        self._add_inflight(InFlight(unit_id, self._rseg, end, records, created_ms))
        return Unit(unit_id, batch, origin)

    def _skip(self, offset: int, end: int, records: int, reason: str) -> None:
        """Move past damaged data (reported once, however often it is read) as if it were acknowledged."""
        if (self._rseg, offset) not in self._reported:
            self._reported.add((self._rseg, offset))
            # Skipped here for the first time: a frame handed out before (from the in-memory tail) may be what
            # is now found damaged, and then each unit from here on comes out under the id of the one before
            # it. An acknowledgement kept from before the rewind would commit a frame never acknowledged:
            # forget those for the units not handed out again yet (they come again: at least once).
            self.tracker.forget_acks_from(self._next_id)
            self._log.error(
                "disk buffer skipped damaged data",
                extra=kv(
                    directory=str(self.directory),
                    segment=segment_name(self._rseg),
                    offset=offset,
                    bytes=end - offset,
                    events=records,
                    reason=reason,
                ),
            )
            if self._on_corrupt is not None:
                self._on_corrupt("corrupt_record", records)
        self._add_inflight(InFlight(None, self._rseg, end, records, 0))

    def _add_inflight(self, entry: InFlight) -> None:
        tracker = self.tracker
        before = (tracker.segment, tracker.offset)
        committed = tracker.add(entry)
        self._roff = entry.end
        if (tracker.segment, tracker.offset) != before:
            self._committed(committed)

    def _reader_for(self, seg_id: int) -> SegmentReader:
        if self._reader is None or self._reader_seg != seg_id:
            self._close_reader()
            self._reader = open_reader(self.directory / segment_name(seg_id))
            self._reader_seg = seg_id
        return self._reader

    def _close_reader(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(OSError):
                self._reader.close()
            self._reader, self._reader_seg = None, -1

    def ack(self, unit_id: int) -> bool:
        """Whether acknowledging `unit_id` moved the committed position."""
        tracker = self.tracker
        before = (tracker.segment, tracker.offset)
        committed = tracker.ack(unit_id)
        if (tracker.segment, tracker.offset) == before:
            return False
        self._committed(committed)
        return True

    def _committed(self, records: int) -> None:
        self.pending = max(0, self.pending - records)
        self._normalize_commit()
        tracker = self.tracker
        if tracker.segment == self.writer.id and tracker.offset >= self.writer.size:
            self.pending = 0  # all committed: no drift from damaged frames whose size was unknown

    def _normalize_commit(self) -> None:
        """A committed position at the end of a sealed segment moves to the start of the next one."""
        tracker = self.tracker
        while True:
            seg = self.segments.get(tracker.segment)
            if seg is None or not seg.sealed or tracker.offset < seg.size:
                return
            tracker.move_to(self.seg_ids[bisect.bisect_right(self.seg_ids, seg.id)])

    def rewind(self) -> None:
        tracker = self.tracker
        tracker.forget_inflight()
        self._rseg, self._roff = tracker.segment, tracker.offset
        self._next_id = tracker.next_id

    def oldest_created_ms(self) -> int | None:
        """When the oldest frame not committed was appended (None if unknown or none)."""
        tracker = self.tracker
        if tracker.inflight:
            return tracker.inflight[0].created_ms  # the head is always a unit, never a skipped region
        for entry in self._tail:
            if (entry.segment, entry.offset) == (tracker.segment, tracker.offset):
                return entry.created_ms
        seg = self.segments.get(tracker.segment)
        if seg is None or tracker.offset >= seg.size:
            return None
        try:
            reader = open_reader(self.directory / segment_name(tracker.segment))
        except OSError:
            return None
        try:
            return reader.created_ms_at(tracker.offset)
        finally:
            reader.close()

    def close_files(self) -> None:
        """Close every descriptor (after the last data sync, or to simulate a crash)."""
        for fd in [*self.unsynced, self._wfd]:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.unsynced, self._wfd = [], -1
        self._close_reader()
        self._tail.clear()
