from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from collector.buffer.ledger import LEDGER_FILE
from collector.buffer.segment import HEADER_SIZE, SegmentReader
from tests.unit.buffer.helpers import (
    Calls,
    disk_bytes,
    drain,
    flip,
    frames,
    log_batch,
    make_buffer,
    segment_files,
    seqs,
)

# Five frames of two records each (seq 0..9) in one segment, left by a cleanly closed buffer.


async def write_five(directory: Path, segment_bytes: int = 1 << 20) -> Path:
    buf = make_buffer(directory, segment_bytes=segment_bytes)
    await buf.open()
    for i in range(5):
        await buf.push(log_batch(i * 2, 2))
    await buf.close()
    files = [p for p in segment_files(directory) if p.stat().st_size]
    assert len(files) == 1
    return files[0]


def damage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "disk buffer skipped damaged data"]


async def reopen_and_drain(directory: Path, calls: Calls) -> list[int]:
    buf = make_buffer(directory, calls)
    await buf.open()
    delivered = drain(buf)
    for u in delivered:
        buf.ack(u)
    assert buf.pending_events == 0
    await buf.close()
    return seqs(delivered)


async def test_damaged_payload_in_the_middle_is_reported_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    segment = await write_five(tmp_path)
    middle = frames(segment)[2]
    flip(segment, middle.offset + HEADER_SIZE + 5)
    calls = Calls()
    assert await reopen_and_drain(tmp_path, calls) == [0, 1, 2, 3, 6, 7, 8, 9]
    assert calls.corrupt == [("corrupt_record", 2)]  # the header was readable: its record count is known
    (record,) = damage_records(caplog)
    assert record.levelno == logging.ERROR
    assert record.fields["segment"] == segment.name  # type: ignore[attr-defined]
    assert record.fields["offset"] == middle.offset  # type: ignore[attr-defined]
    assert record.fields["reason"] == "crc mismatch"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("field_offset", "reason"), [(0, "bad magic"), (8, "crc mismatch"), (16, "crc mismatch")])
async def test_damaged_header_is_reported_and_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, field_offset: int, reason: str
) -> None:
    segment = await write_five(tmp_path)
    middle = frames(segment)[1]
    flip(segment, middle.offset + field_offset)  # magic, length, created_ms
    calls = Calls()
    assert await reopen_and_drain(tmp_path, calls) == [0, 1, 4, 5, 6, 7, 8, 9]
    assert len(calls.corrupt) == 1 and calls.corrupt[0][0] == "corrupt_record"
    (record,) = damage_records(caplog)
    assert record.fields["offset"] == middle.offset  # type: ignore[attr-defined]
    assert record.fields["reason"] in (reason, "bad length")  # type: ignore[attr-defined]


async def test_damage_is_reported_once_even_when_read_again(tmp_path: Path) -> None:
    segment = await write_five(tmp_path)
    flip(segment, frames(segment)[0].offset + HEADER_SIZE + 1)
    calls = Calls()
    buf = make_buffer(tmp_path, calls)
    await buf.open()
    assert seqs(drain(buf)) == [2, 3, 4, 5, 6, 7, 8, 9]
    buf.rewind()
    assert seqs(drain(buf)) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert calls.corrupt == [("corrupt_record", 2)]
    await buf.close()


async def test_torn_tail_is_cut_at_start_up(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    segment = await write_five(tmp_path)
    last = frames(segment)[-1]
    os.truncate(segment, last.offset + HEADER_SIZE + 3)  # a crash in the middle of the last write
    calls = Calls()
    buf = make_buffer(tmp_path, calls)
    await buf.open()
    assert calls.corrupt == [("torn_tail", 0)]
    assert segment.stat().st_size == last.offset
    (record,) = [r for r in caplog.records if "torn" in r.getMessage()]
    assert record.fields["segment"] == segment.name  # type: ignore[attr-defined]
    assert record.fields["offset"] == last.offset  # type: ignore[attr-defined]
    assert seqs(drain(buf)) == [0, 1, 2, 3, 4, 5, 6, 7]
    await buf.push(log_batch(10))
    assert seqs(drain(buf)) == [10]
    await buf.close()


async def test_garbage_after_the_last_frame_is_cut(tmp_path: Path) -> None:
    segment = await write_five(tmp_path)
    size = segment.stat().st_size
    with open(segment, "ab") as f:
        f.write(b"CLB1" + os.urandom(100))
    calls = Calls()
    buf = make_buffer(tmp_path, calls)
    await buf.open()
    assert calls.corrupt == [("torn_tail", 0)]
    assert segment.stat().st_size == size
    assert seqs(drain(buf)) == list(range(10))
    await buf.close()


async def test_damaged_last_frame_of_an_older_segment_skips_to_the_next(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path, segment_bytes=4096)
    await buf.open()
    for i in range(30):
        await buf.push(log_batch(i, size=300))
    await buf.close()
    files = [p for p in segment_files(tmp_path) if p.stat().st_size]
    assert len(files) >= 3
    first = frames(files[0])
    flip(files[0], first[-1].offset + 2)  # its magic: nothing after it in this segment verifies
    calls = Calls()
    delivered = await reopen_and_drain(tmp_path, calls)
    lost = len(first) - 1
    assert delivered == [i for i in range(30) if i != lost]
    assert calls.corrupt == [("corrupt_record", 0)]


async def test_damaged_ledger_replays_from_the_oldest_segment(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buf = make_buffer(tmp_path)
    await buf.open()
    for i in range(5):
        await buf.push(log_batch(i))
    units = drain(buf)
    for u in units[:3]:
        buf.ack(u)
    await buf.close()
    (tmp_path / LEDGER_FILE).write_bytes(b'{"version": 1, "crc": 1, "sta')
    calls = Calls()
    assert await reopen_and_drain(tmp_path, calls) == [0, 1, 2, 3, 4]  # duplicates, never loss
    assert calls.corrupt == []
    assert any("ledger is damaged" in r.getMessage() for r in caplog.records)


async def test_missing_ledger_replays_everything(tmp_path: Path) -> None:
    await write_five(tmp_path)
    (tmp_path / LEDGER_FILE).unlink()
    assert await reopen_and_drain(tmp_path, Calls()) == list(range(10))


async def test_ledger_past_the_end_of_a_shortened_segment(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    buf = make_buffer(tmp_path)
    await buf.open()
    for i in range(3):
        await buf.push(log_batch(i))
    for u in drain(buf):
        buf.ack(u)
    await buf.push(log_batch(3))
    await buf.close()
    (segment,) = [p for p in segment_files(tmp_path) if p.stat().st_size]
    os.truncate(segment, frames(segment)[0].end)  # lost what the ledger points into (power loss, fsync: never)
    calls = Calls()
    assert await reopen_and_drain(tmp_path, calls) == []
    assert calls.corrupt == []  # cut at a frame boundary: nothing torn, nothing to skip
    assert any("points past the end" in r.getMessage() for r in caplog.records)


async def test_start_up_reads_no_sealed_segment_when_the_ledger_knows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buf = make_buffer(tmp_path, segment_bytes=4096)
    await buf.open()
    for i in range(40):
        await buf.push(log_batch(i, size=300))
    units = drain(buf)
    for u in units[:5]:
        buf.ack(u)
    await buf.close()
    assert len(segment_files(tmp_path)) >= 4

    def no_scan(*args: object) -> tuple[int, int]:
        raise AssertionError("sealed segments are scanned at start-up")

    monkeypatch.setattr(SegmentReader, "header_counts", no_scan)
    again = make_buffer(tmp_path, segment_bytes=4096)
    await again.open()
    assert again.pending_events == 35
    assert again.metrics()["bytes"] == disk_bytes(tmp_path)
    assert seqs(drain(again)) == list(range(5, 40))
    await again.close()


async def test_figures_are_recounted_when_the_ledger_has_none(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path, segment_bytes=4096)
    await buf.open()
    for i in range(40):
        await buf.push(log_batch(i, size=300))
    units = drain(buf)
    for u in units[:5]:
        buf.ack(u)
    await buf.close()
    (tmp_path / LEDGER_FILE).unlink()
    again = make_buffer(tmp_path, segment_bytes=4096)
    await again.open()
    assert again.pending_events == 40
    await again.close()


async def test_damage_appearing_while_running_is_skipped(tmp_path: Path) -> None:
    calls = Calls()
    buf = make_buffer(tmp_path, calls, fsync_interval=0.05)
    await buf.open()
    for i in range(20):  # more frames than the in-memory tail holds
        await buf.push(log_batch(i))
    (segment,) = [p for p in segment_files(tmp_path) if p.stat().st_size]
    flip(segment, frames(segment)[3].offset + HEADER_SIZE)
    delivered = drain(buf)
    assert seqs(delivered) == [i for i in range(20) if i != 3]
    for u in delivered:
        buf.ack(u)
    assert buf.pending_events == 0
    await buf.close()
    assert calls.corrupt == [("corrupt_record", 1)]
