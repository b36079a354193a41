from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from collector.acks import AckTracker
from collector.buffer import disk, store
from collector.buffer.disk import BufferClosedError
from collector.buffer.ledger import read_ledger
from collector.events import LOGS, METRICS, Batch, Metric
from collector.testing import wait_for
from tests.unit.buffer.helpers import Calls, disk_bytes, drain, log_batch, make_buffer, segment_files, seqs

# -- order, acknowledgement, rewind, restart -----------------------------------------------------------


async def test_units_come_out_in_order_and_acks_free_them(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path)
    await buf.open()
    for i in range(3):
        assert await buf.push(log_batch(i * 2, 2))
    assert buf.pending_events == 6
    units = [await buf.pop() for _ in range(3)]
    assert [u.id for u in units if u] == [1, 2, 3]
    assert seqs([u for u in units if u]) == [0, 1, 2, 3, 4, 5]
    assert all(u is not None and u.batch.ack is None and u.batch.kind == LOGS for u in units)
    for u in units:
        assert u is not None
        buf.ack(u)
    assert buf.pending_events == 0
    assert buf.metrics()["oldest_age_seconds"] == 0.0
    await buf.close()


async def test_pop_waits_for_data_and_ends_after_close_intake(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path)
    await buf.open()
    waiting = asyncio.create_task(buf.pop())
    await asyncio.sleep(0)
    assert not waiting.done()
    await buf.push(log_batch(0))
    unit = await asyncio.wait_for(waiting, 1)
    assert unit is not None and seqs([unit]) == [0]
    ending = asyncio.create_task(buf.pop())
    await asyncio.sleep(0)
    assert not ending.done()
    buf.close_intake()
    assert await asyncio.wait_for(ending, 1) is None
    with pytest.raises(BufferClosedError):
        await buf.push(log_batch(1))
    await buf.close()


async def test_close_wakes_a_waiting_pop(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path)
    await buf.open()
    waiting = asyncio.create_task(buf.pop())
    await asyncio.sleep(0)
    await buf.close()
    assert await asyncio.wait_for(waiting, 1) is None


async def test_out_of_order_acks_commit_only_the_acknowledged_prefix(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path)
    await buf.open()
    for i in range(4):
        await buf.push(log_batch(i))
    units = drain(buf)
    buf.ack(units[1])
    buf.ack(units[3])
    assert buf.pending_events == 4  # nothing before unit 1 is acknowledged
    buf.ack(units[0])
    assert buf.pending_events == 2  # units 1 and 2 committed; 4 waits for 3
    await buf.close()
    again = make_buffer(tmp_path)
    await again.open()
    assert again.pending_events == 2
    assert seqs(drain(again)) == [2, 3]  # 4 was acknowledged out of order: delivered again (at least once)
    await again.close()


async def test_rewind_hands_out_in_flight_units_again_with_the_same_ids(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path)
    await buf.open()
    for i in range(4):
        await buf.push(log_batch(i))
    first = drain(buf)
    buf.ack(first[0])
    buf.ack(first[2])  # acknowledged, not committed: handed out again too (skip nothing)
    buf.rewind()
    second = drain(buf)
    assert [(u.id, u.batch.records) for u in second] == [(u.id, u.batch.records) for u in first[1:]]
    await buf.push(log_batch(4))
    (new,) = drain(buf)
    assert new.id == 5 and seqs([new]) == [4]
    for u in second:
        buf.ack(u)
    buf.ack(new)
    assert buf.pending_events == 0
    await buf.close()


async def test_reopen_delivers_exactly_the_unacknowledged_units(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path)
    await buf.open()
    for i in range(30):
        await buf.push(log_batch(i, size=200))  # several segments
    units = drain(buf)
    for u in units[:17]:
        buf.ack(u)
    await buf.close()
    again = make_buffer(tmp_path)
    await again.open()
    assert again.pending_events == 13
    rest = drain(again)
    assert seqs(rest) == list(range(17, 30))
    assert [u.id for u in rest] == list(range(1, 14))
    await again.push(log_batch(30))
    assert seqs(drain(again)) == [30]  # new data after the old
    await again.close()


async def test_acks_not_yet_persisted_come_again_after_a_crash(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path, fsync_interval=0.05)
    await buf.open()
    for i in range(4):
        await buf.push(log_batch(i))
    units = drain(buf)
    buf.ack(units[0])
    buf.ack(units[1])

    def ledger_offset() -> int:
        state = read_ledger(tmp_path)
        return state.offset if state else 0

    await wait_for(lambda: ledger_offset() > 0, timeout=2)
    buf.ack(units[2])
    buf.ack(units[3])
    await buf._abort()  # crash before the next ledger write
    again = make_buffer(tmp_path)
    await again.open()
    assert seqs(drain(again)) == [2, 3]
    await again.close()


async def test_the_same_instance_reopens_with_increasing_ids(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path)
    await buf.open()
    await buf.push(log_batch(0))
    (unit,) = drain(buf)
    await buf.close()
    await buf.open()
    (again,) = drain(buf)
    assert again.id > unit.id and seqs([again]) == [0]
    buf.ack(unit)  # a unit from before the restart: ignored
    assert buf.pending_events == 1
    await buf.close()


async def test_close_is_idempotent_and_safe_without_open(tmp_path: Path) -> None:
    never_opened = make_buffer(tmp_path / "a")
    await never_opened.close()
    await never_opened.close()
    assert await never_opened.pop() is None
    buf = make_buffer(tmp_path / "b")
    await buf.open()
    await asyncio.gather(buf.close(), buf.close())
    await buf.close()
    with pytest.raises(BufferClosedError):
        await buf.push(log_batch(0))


# -- the in-memory tail ----------------------------------------------------------------------------


async def test_a_unit_from_the_tail_equals_the_one_read_back(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path)
    await buf.open()
    exact = Batch(LOGS, [{"message": b"x", "n": 1}], 1)
    inexact = Batch(LOGS, [{"message": "y", "pair": (1, 2), "when": object}], 1)
    metrics = Batch(METRICS, [Metric("cpu", "gauge", 0.5, {"host": "a"})], 1)
    for batch in (exact, inexact, metrics):
        await buf.push(batch)
    fresh = drain(buf)
    assert fresh[0].batch.records is exact.records  # handed out from memory, not decoded
    buf.rewind()
    read_back = drain(buf)
    assert [u.id for u in fresh] == [u.id for u in read_back]
    for memory, disk_unit in zip(fresh, read_back, strict=True):
        assert memory.batch.records == disk_unit.batch.records
        assert (memory.batch.kind, memory.batch.nbytes, memory.batch.ack) == (
            disk_unit.batch.kind,
            disk_unit.batch.nbytes,
            None,
        )
    assert fresh[1].batch.records == [{"message": "y", "pair": [1, 2], "when": str(object)}]
    assert type(read_back[2].batch.records[0]) is Metric
    await buf.close()


# -- fsync policies and input acknowledgement ----------------------------------------------------------


@pytest.fixture
def fsync_log(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    order: list[str] = []
    real = disk._fsync_all

    def spy(fds: list[int], directory: Path | None) -> None:
        order.append("fsync")
        real(fds, directory)

    monkeypatch.setattr(disk, "_fsync_all", spy)
    return order


async def test_interval_releases_the_input_ack_only_after_an_fsync(tmp_path: Path, fsync_log: list[str]) -> None:
    tracker = AckTracker(lambda pos: fsync_log.append(f"commit {pos}"))
    buf = make_buffer(tmp_path, fsync="interval", fsync_interval=0.05)
    await buf.open()
    token = tracker.token(1)
    assert await buf.push(log_batch(0, ack=token))
    assert not token.done and fsync_log == []
    await wait_for(lambda: token.done, timeout=2)
    assert fsync_log == ["fsync", "commit 1"]
    await buf.close()


async def test_interval_fsync_covers_only_batches_written_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, entered = threading.Event(), threading.Event()
    real = disk._fsync_all

    def slow(fds: list[int], directory: Path | None) -> None:
        entered.set()
        assert gate.wait(5)
        real(fds, directory)

    monkeypatch.setattr(disk, "_fsync_all", slow)
    tracker = AckTracker(lambda pos: None)
    buf = make_buffer(tmp_path, fsync="interval")
    await buf.open()
    first, second = tracker.token(1), tracker.token(2)
    await buf.push(log_batch(0, ack=first))
    buf._kick.set()  # an fsync tick now
    await wait_for(entered.is_set, timeout=2)
    await buf.push(log_batch(1, ack=second))  # written while the fsync runs
    gate.set()
    await wait_for(lambda: first.done, timeout=2)
    assert not second.done
    buf._kick.set()
    await wait_for(lambda: second.done, timeout=2)
    await buf.close()


async def test_always_releases_the_input_ack_before_push_returns(tmp_path: Path, fsync_log: list[str]) -> None:
    tracker = AckTracker(lambda pos: fsync_log.append(f"commit {pos}"))
    buf = make_buffer(tmp_path, fsync="always")
    await buf.open()
    token = tracker.token(1)
    await buf.push(log_batch(0, ack=token))
    assert token.done
    assert fsync_log == ["fsync", "commit 1"]
    await buf.close()


async def test_never_releases_the_input_ack_right_after_the_write(tmp_path: Path, fsync_log: list[str]) -> None:
    tracker = AckTracker(lambda pos: fsync_log.append(f"commit {pos}"))
    buf = make_buffer(tmp_path, fsync="never")
    await buf.open()
    token = tracker.token(1)
    await buf.push(log_batch(0, ack=token))
    assert token.done and fsync_log == ["commit 1"]
    await buf.close()
    assert fsync_log == ["commit 1", "fsync"]  # a clean close still makes the data durable


# -- bounds ---------------------------------------------------------------------------------------------


async def test_drop_newest_never_passes_max_bytes_and_reports_drops(tmp_path: Path) -> None:
    calls = Calls()
    buf = make_buffer(tmp_path, calls, max_bytes=64 * 1024, segment_bytes=8192, when_full="drop_newest")
    await buf.open()
    tracker = AckTracker(lambda pos: None)
    results = []
    for i in range(100):
        token = tracker.token(i)
        results.append(await buf.push(log_batch(i * 4, 4, size=250, ack=token)))
        assert token.done  # stored (fsync never) or dropped: released either way
        assert disk_bytes(tmp_path) <= 64 * 1024
        assert buf.metrics()["bytes"] == disk_bytes(tmp_path)
    stored = results.count(True)
    assert 0 < stored < 100
    assert calls.drops == [("buffer_full", 4)] * (100 - stored)
    units = drain(buf)
    assert seqs(units) == list(range(stored * 4))  # the newest were dropped, not the oldest
    for u in units:
        buf.ack(u)
    # Everything is committed: room comes back once the ledger moves past the full segments.
    assert await buf.push(log_batch(1000, 4, size=250))
    assert seqs(drain(buf)) == [1000, 1001, 1002, 1003]
    assert disk_bytes(tmp_path) <= 64 * 1024
    await buf.close()


async def fill_until_blocked(buf: disk.DiskBuffer) -> tuple[asyncio.Task[bool], int]:
    """Push 4-record batches until one waits for room; that push, and how many were stored before it."""
    i = 0
    while True:
        push = asyncio.create_task(buf.push(log_batch(i * 4, 4, size=250)))
        await asyncio.sleep(0)  # a push with room completes in its first step
        await wait_for(lambda p=push: p.done() or bool(buf._room_waiters), timeout=2)  # type: ignore[misc]
        assert disk_bytes(buf.directory) <= buf.max_bytes
        if not push.done():
            return push, i
        assert push.result()
        i += 1


async def test_block_waits_until_acks_free_a_segment(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path, max_bytes=64 * 1024, segment_bytes=8192, when_full="block")
    await buf.open()
    push, i = await fill_until_blocked(buf)
    assert i > 10
    units = drain(buf)
    buf.ack(units[0])
    await asyncio.sleep(0.05)  # not a wait: the push must stay blocked (one frame does not free a segment)
    assert not push.done()  # one frame does not free a segment
    for u in units:
        buf.ack(u)
    assert await asyncio.wait_for(push, 2)
    assert disk_bytes(tmp_path) <= 64 * 1024
    assert seqs(drain(buf)) == [i * 4 + k for k in range(4)]
    await buf.close()


async def test_close_wakes_a_push_waiting_for_room(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path, max_bytes=64 * 1024, segment_bytes=8192)
    await buf.open()
    push, _ = await fill_until_blocked(buf)
    await buf.close()
    with pytest.raises(BufferClosedError):
        await push


async def test_large_batches_are_split_and_oversized_records_dropped(tmp_path: Path) -> None:
    calls = Calls()
    buf = make_buffer(tmp_path, calls, max_bytes=64 * 1024, segment_bytes=4096)
    await buf.open()
    tracker = AckTracker(lambda pos: None)
    records: list[dict[str, Any]] = [{"seq": i, "message": b"r" * 100} for i in range(100)]
    records.insert(50, {"seq": -1, "message": b"x" * 40_000})  # more than max_bytes // 2
    token = tracker.token(1)
    assert not await buf.push(Batch(LOGS, records, 10_000 + 40_000, token))
    assert token.done
    assert calls.drops == [("too_large", 1)]
    units = drain(buf)
    assert len(units) > 3
    assert seqs(units) == list(range(100))
    assert sum(u.batch.nbytes for u in units) <= 50_000
    assert all(os.path.getsize(p) <= 4096 for p in segment_files(tmp_path))
    await buf.close()


async def test_a_record_larger_than_a_segment_gets_a_frame_of_its_own(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path, max_bytes=64 * 1024, segment_bytes=4096)
    await buf.open()
    await buf.push(log_batch(0, 1, size=10_000))
    await buf.push(log_batch(1, 1))
    assert seqs(drain(buf)) == [0, 1]
    await buf.close()


# -- segments and the ledger ----------------------------------------------------------------------------


async def test_segments_are_deleted_only_after_a_ledger_that_no_longer_needs_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deleted: list[int] = []
    violations: list[str] = []
    real_unlink = os.unlink

    def checking_unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        name = os.path.basename(path)
        if name.endswith(".seg"):
            seg_id = int(name[:-4])
            state = read_ledger(tmp_path)
            if state is None or state.segment <= seg_id:
                violations.append(f"{name} unlinked while the ledger says {state}")
            deleted.append(seg_id)
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", checking_unlink)
    buf = make_buffer(tmp_path, fsync="interval", fsync_interval=0.05)
    await buf.open()
    for i in range(40):
        await buf.push(log_batch(i, size=300))
    files = segment_files(tmp_path)
    assert len(files) >= 4
    units = drain(buf)
    for u in units[:20]:
        buf.ack(u)
    await wait_for(lambda: len(deleted) > 0, timeout=2)
    await asyncio.sleep(0.1)  # not a wait: two more flush ticks, and nothing else may be deleted
    ledger = read_ledger(tmp_path)
    assert ledger is not None
    assert all(seg_id < ledger.segment for seg_id in deleted)
    assert [p for p in segment_files(tmp_path) if int(p.name[:-4]) < ledger.segment] == []
    remaining = segment_files(tmp_path)
    assert buf.metrics()["segments"] == len(remaining)
    assert buf.metrics()["bytes"] == disk_bytes(tmp_path)
    for u in units[20:]:
        buf.ack(u)
    await buf.close()
    assert violations == []
    assert len(segment_files(tmp_path)) == 1  # only the (empty) segment being written
    assert buf.metrics()["bytes"] == disk_bytes(tmp_path)


async def test_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buf = make_buffer(tmp_path, max_bytes=1 << 20)
    assert buf.metrics()["events"] == 0
    await buf.open()
    await buf.push(log_batch(0, 3))
    await buf.push(log_batch(3, 2))
    m = buf.metrics()
    assert m["events"] == 5 and buf.pending_events == 5
    assert m["bytes"] == disk_bytes(tmp_path) > 0
    assert m["segments"] == 1 and m["max_bytes"] == 1 << 20
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 100)
    assert 99 < buf.metrics()["oldest_age_seconds"] < 110
    units = drain(buf)
    assert 99 < buf.metrics()["oldest_age_seconds"] < 110  # popped is not acknowledged
    for u in units:
        buf.ack(u)
    assert buf.metrics()["events"] == 0 and buf.metrics()["oldest_age_seconds"] == 0
    await buf.close()


# -- failures of the disk ---------------------------------------------------------------------------


def failing_writev(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    """Make the next `failures` frame writes fail with ENOSPC after writing a few bytes."""
    real = os.writev
    left = [failures]

    def writev(fd: int, buffers: list[bytes]) -> int:
        if left[0] > 0:
            left[0] -= 1
            os.write(fd, buffers[0][:5])  # a partial frame, which must not stay behind
            raise OSError(28, "No space left on device")
        return real(fd, buffers)

    monkeypatch.setattr(os, "writev", writev)
    return left


async def test_drop_newest_drops_what_the_disk_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    buf = make_buffer(tmp_path, calls, when_full="drop_newest")
    await buf.open()
    await buf.push(log_batch(0))
    failing_writev(monkeypatch, 1)
    token = AckTracker(lambda pos: None).token(1)
    assert not await buf.push(log_batch(1, 3, ack=token))
    assert token.done and calls.drops == [("write_error", 3)]
    await buf.push(log_batch(4))
    assert seqs(drain(buf)) == [0, 4]
    assert buf.metrics()["bytes"] == disk_bytes(tmp_path)
    await buf.close()


async def test_block_retries_what_the_disk_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(disk, "WRITE_RETRY_SECONDS", 0.01)
    buf = make_buffer(tmp_path, when_full="block")
    await buf.open()
    left = failing_writev(monkeypatch, 3)
    assert await buf.push(log_batch(0))
    assert left == [0]
    assert seqs(drain(buf)) == [0]
    assert buf.metrics()["bytes"] == disk_bytes(tmp_path)
    await buf.close()


async def test_a_failed_fsync_never_acknowledges_the_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = disk._fsync_all
    fail = [True]

    def flaky(fds: list[int], directory: Path | None) -> None:
        if fail[0]:
            raise OSError(5, "Input/output error")
        real(fds, directory)

    monkeypatch.setattr(disk, "_fsync_all", flaky)
    tracker = AckTracker(lambda pos: None)
    buf = make_buffer(tmp_path, fsync="interval")
    await buf.open()
    lost, later = tracker.token(1), tracker.token(2)
    await buf.push(log_batch(0, ack=lost))
    buf._kick.set()
    await wait_for(lambda: any("fsync failed" in r.getMessage() for r in caplog.records), timeout=2)
    fail[0] = False
    await buf.push(log_batch(1, ack=later))
    buf._kick.set()
    await wait_for(lambda: later.done, timeout=2)
    assert not lost.done  # its input reads it again after a restart
    assert tracker.committed is None
    await buf.close()


async def test_reads_from_disk_interleaved_with_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "TAIL_FRAMES", 0)  # every unit is read back and decoded
    buf = make_buffer(tmp_path, segment_bytes=4096)
    await buf.open()
    out = []
    for i in range(200):
        await buf.push(log_batch(i * 2, 2, size=i % 97))
        if i % 3 == 0:
            out.extend(drain(buf))
            for u in out[-2:]:
                buf.ack(u)
    out.extend(drain(buf))
    assert seqs(out) == list(range(400))
    assert [u.batch.records[0]["message"] for u in out] == [b"m" * (i % 97) for i in range(200)]
    await buf.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors through /proc")
@pytest.mark.parametrize("policy", ["always", "interval", "never"])
async def test_close_releases_every_descriptor(tmp_path: Path, policy: str) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(2):
        buf = make_buffer(tmp_path, fsync=policy, fsync_interval=0.01, segment_bytes=4096)
        await buf.open()
        for i in range(30):  # several segments
            await buf.push(log_batch(i, size=300))
        units = drain(buf)
        for u in units[:10]:
            buf.ack(u)
        buf.metrics()
        await buf.close()
    assert len(os.listdir("/proc/self/fd")) == before
