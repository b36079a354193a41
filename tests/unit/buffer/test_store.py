"""`SegmentStore` on its own, over real segment files: order, commit prefix, rewind, roll, damage."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.buffer.base import Unit
from collector.buffer.codec import encode_batch
from collector.buffer.disk import DiskBuffer
from collector.buffer.ledger import read_ledger, write_ledger
from collector.buffer.recovery import recover
from collector.buffer.segment import HEADER_SIZE, segment_name
from collector.buffer.store import TAIL_FRAMES, SegmentStore
from collector.events import Batch
from tests.unit.buffer.helpers import Calls, drain, flip, frames, log_batch, make_buffer

LOG = logging.getLogger("test.buffer.store")


class Store:
    """A `SegmentStore` in `directory`, opened as `DiskBuffer.open` does (recovery first)."""

    def __init__(self, directory: Path, segment_bytes: int = 4096, first_unit_id: int = 0) -> None:
        self.directory = directory
        self.calls = Calls()
        self.store = SegmentStore(
            directory,
            segment_bytes,
            recover(directory, LOG),
            first_unit_id=first_unit_id,
            close_sealed_at_once=True,
            log=LOG,
            on_corrupt=self.calls.on_corrupt,
        )

    def append(self, first: int, n: int = 1, size: int = 40, *, in_memory: bool = False) -> Batch:
        """A batch of `n` records numbered from `first`; `in_memory`: kept in the tail for a caught-up reader."""
        batch = log_batch(first, n, size=size)
        self.store.append(encode_batch(batch), n, batch if in_memory else None)
        return batch

    def pop(self, k: int) -> list[Unit]:
        out = []
        for _ in range(k):
            unit = self.store.next_unit()
            if unit is None:
                break
            out.append(unit)
        return out

    def drain(self) -> list[Unit]:
        return self.pop(1 << 30)

    def position(self) -> tuple[int, int]:
        return self.store.tracker.segment, self.store.tracker.offset

    def segment_path(self, seg_id: int | None = None) -> Path:
        return self.directory / segment_name(self.store.writer.id if seg_id is None else seg_id)

    def close(self) -> None:
        self.store.close_files()


def seqs(units: list[Unit]) -> list[int]:
    return [r["seq"] for u in units for r in u.batch.records]


@pytest.fixture
def s(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "buf")
    yield store
    store.close()


# -- order and ids -------------------------------------------------------------------------------------------


def test_units_come_out_in_append_order_with_increasing_ids(s: Store) -> None:
    for i in range(5):
        s.append(i * 2, 2)
    assert not s.store.caught_up()
    units = s.drain()
    assert seqs(units) == list(range(10))
    assert [u.id for u in units] == [0, 1, 2, 3, 4]
    assert all(len(u.batch.records) == 2 for u in units)  # a unit is one whole frame
    assert s.store.caught_up() and s.store.next_unit() is None
    assert s.store.pending == 10


def test_the_in_memory_tail_and_the_file_hand_out_the_same_units(s: Store) -> None:
    for i in range(3):
        s.append(i, in_memory=True)
    from_memory = s.drain()
    s.store.rewind()
    s.store._tail.clear()  # what a restart or a reader fallen behind the tail sees: the file
    from_disk = s.drain()
    assert [(u.id, u.origin, u.batch.records) for u in from_memory] == [
        (u.id, u.origin, u.batch.records) for u in from_disk
    ]
    assert from_memory[0].batch.records is not from_disk[0].batch.records


def test_the_tail_keeps_only_the_last_frames(s: Store) -> None:
    for i in range(TAIL_FRAMES + 3):
        s.append(i, in_memory=True)
    assert len(s.store._tail) == TAIL_FRAMES
    assert seqs(s.drain()) == list(range(TAIL_FRAMES + 3))  # the older ones are read back from the file


# -- acknowledgements and the committed prefix ---------------------------------------------------------------


def test_out_of_order_acks_commit_only_the_acknowledged_prefix(s: Store) -> None:
    for i in range(4):
        s.append(i)
    u = s.drain()
    ends = [f.end for f in frames(s.segment_path())]
    assert s.position() == (s.store.writer.id, 0)
    assert s.store.ack(u[2].id) is False and s.store.ack(u[1].id) is False  # unit 0 is still out
    assert s.position() == (s.store.writer.id, 0) and s.store.pending == 4
    assert s.store.ack(u[0].id) is True
    assert s.position() == (s.store.writer.id, ends[2])  # over 0, 1 and 2 at once
    assert s.store.pending == 1
    assert s.store.ack(u[0].id) is False  # twice: nothing more
    assert s.store.ack(u[3].id) is True and s.position() == (s.store.writer.id, ends[3])
    assert s.store.pending == 0


def test_rewind_hands_out_what_is_not_committed_again_with_the_same_ids(s: Store) -> None:
    for i in range(4):
        s.append(i)
    first = s.drain()
    s.store.ack(first[0].id)
    s.store.ack(first[2].id)  # out of order: survives the rewind
    s.store.rewind()
    again = s.drain()
    assert [(u.id, seqs([u])) for u in again] == [(u.id, seqs([u])) for u in first[1:]]
    s.store.ack(again[0].id)  # unit 1: the prefix now reaches over unit 2, acknowledged before the rewind
    assert s.position() == (s.store.writer.id, frames(s.segment_path())[2].end)


def test_ledger_data_names_the_committed_position_and_a_reopened_store_resumes_there(tmp_path: Path) -> None:
    s = Store(tmp_path / "buf")
    for i in range(3):
        s.append(i)
    u = s.drain()
    s.store.ack(u[0].id)
    data, doomed = s.store.ledger_data()
    write_ledger(s.directory, data)
    assert doomed == []
    s.close()
    ledger = read_ledger(s.directory)
    assert ledger is not None and (ledger.segment, ledger.offset) == s.position()
    reopened = Store(tmp_path / "buf", first_unit_id=s.store.max_unit_id + 1)
    try:
        assert seqs(reopened.drain()) == [1, 2]  # unit 0 was committed; units 1 and 2 come again
        assert reopened.store.pending == 2
    finally:
        reopened.close()


# -- segments: roll, reclaim, forget -------------------------------------------------------------------------


def test_roll_seals_a_segment_and_committed_segments_are_doomed_then_forgotten(tmp_path: Path) -> None:
    s = Store(tmp_path / "buf", segment_bytes=1024)
    frame = HEADER_SIZE + len(encode_batch(log_batch(0, size=200)))
    for i in range(12):  # about 4 frames a segment
        s.append(i, size=200)
    assert len(s.store.seg_ids) >= 3
    first_seg = s.store.seg_ids[0]
    assert all(seg.sealed for seg in s.store.segments.values() if seg.id != s.store.writer.id)
    assert s.store.segments[first_seg].size <= 1024 and s.store.segments[first_seg].size % frame == 0
    units = s.drain()
    assert seqs(units) == list(range(12))  # read across segment ends
    per_first = s.store.segments[first_seg].records
    for unit in units[:per_first]:
        s.store.ack(unit.id)
    # Everything in the first segment is committed: the position moved to the start of the next one.
    assert s.position() == (s.store.seg_ids[1], 0)
    assert s.store.reclaimable()
    data, doomed = s.store.ledger_data()
    assert doomed == [first_seg]
    write_ledger(s.directory, data)
    total, first_size = s.store.total, s.store.segments[first_seg].size
    (s.directory / segment_name(first_seg)).unlink()
    s.store.forget(doomed)
    assert first_seg not in s.store.segments and s.store.seg_ids[0] > first_seg
    assert s.store.total == total - first_size
    assert not s.store.reclaimable()
    s.store.rewind()
    assert seqs(s.drain()) == list(range(per_first, 12))
    s.close()


def test_an_explicit_roll_starts_a_new_empty_segment(s: Store) -> None:
    s.append(0)
    old = s.store.writer.id
    s.store.roll()
    assert s.store.writer.id == old + 1 and s.store.writer.size == 0
    assert s.store.segments[old].sealed and (s.directory / segment_name(old + 1)).exists()
    s.append(1)
    assert seqs(s.drain()) == [0, 1]


# -- damage --------------------------------------------------------------------------------------------------


def test_a_damaged_frame_is_skipped_reported_once_and_counts_as_committed(s: Store) -> None:
    for i in range(3):
        s.append(i)
    f = frames(s.segment_path())
    flip(s.segment_path(), f[1].offset + HEADER_SIZE + 3)  # a payload byte: the crc fails
    units = s.drain()
    assert seqs(units) == [0, 2]
    assert s.calls.corrupt == [("corrupt_record", 1)]
    s.store.ack(units[0].id)  # the damaged region after it is passed over, as if acknowledged
    assert s.position() == (s.store.writer.id, f[1].end)
    s.store.rewind()
    assert seqs(s.drain()) == [2]
    assert s.calls.corrupt == [("corrupt_record", 1)]  # read twice, reported once


def test_resync_finds_the_next_good_frame_after_a_damaged_header(s: Store) -> None:
    for i in range(4):
        s.append(i, size=100)
    f = frames(s.segment_path())
    flip(s.segment_path(), f[1].offset + 9)  # the length field: the frame's end is unknown
    flip(s.segment_path(), f[2].offset)  # and the next frame's magic
    assert seqs(s.drain()) == [0, 3]  # the reader found frame 3 by its magic and crc
    assert len(s.calls.corrupt) >= 1
    assert s.store.caught_up()


def test_garbage_at_the_end_of_a_sealed_segment_is_skipped(tmp_path: Path) -> None:
    s = Store(tmp_path / "buf")
    s.append(0)
    s.append(1)
    path = s.segment_path()
    f = frames(path)
    flip(path, f[1].offset + HEADER_SIZE + 1)
    s.store.roll()
    s.append(2)
    assert seqs(s.drain()) == [0, 2]
    s.close()


def test_a_frame_damaged_after_it_was_handed_out_from_memory_does_not_cost_the_frames_after_it(
    s: Store,
) -> None:
    """Found by test_disk_stateful: a unit acknowledged before a rewind must not acknowledge another frame.

    Frame 0 is damaged on disk after seq 0 and 1 were handed out from the in-memory tail; seq 1 is
    acknowledged. After a rewind the reader skips frame 0 (damaged) and so hands seq 1 out again under
    the id that frame 0 had; the acknowledgement of the old id of seq 1 then fell on seq 2, which was
    committed without ever being acknowledged: never handed out again.
    """
    for i in range(3):
        s.append(i, in_memory=True)  # three one-record frames in one segment
    flip(s.segment_path(), frames(s.segment_path())[0].offset + HEADER_SIZE + 1)
    seq0, seq1 = s.pop(2)  # from the in-memory tail
    assert seqs([seq0, seq1]) == [0, 1]
    s.store.ack(seq1.id)
    for _ in range(3):
        s.store.rewind()
    (again,) = s.pop(1)  # from the file: frame 0 is skipped as damaged
    assert seqs([again]) == [1]
    s.store.ack(again.id)
    s.store.rewind()
    s.pop(1)
    s.store.rewind()
    assert seqs(s.drain()) == [2]  # neither acknowledged nor lost: it comes out again


async def test_the_same_case_through_the_disk_buffer(tmp_path: Path) -> None:
    """The stateful test's sequence, through `DiskBuffer` as it ran it."""
    buf: DiskBuffer = make_buffer(tmp_path / "b", Calls())
    await buf.open()
    try:
        for i in range(3):
            assert await buf.push(log_batch(i))
        path = tmp_path / "b" / segment_name(buf._opened().writer.id)
        flip(path, frames(path)[0].offset + HEADER_SIZE + 1)
        first, second = buf.pop_nowait(), buf.pop_nowait()
        assert first is not None and second is not None
        buf.ack(second)
        for _ in range(3):
            buf.rewind()
        again = buf.pop_nowait()
        assert again is not None and again.batch.records[0]["seq"] == 1
        buf.ack(again)
        buf.rewind()
        buf.pop_nowait()
        buf.rewind()
        assert [r["seq"] for u in drain(buf) for r in u.batch.records] == [2]
    finally:
        await buf.close()
