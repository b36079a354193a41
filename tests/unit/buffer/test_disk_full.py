"""A disk that refuses writes (full, I/O errors), injected at the write calls themselves (issue 13).

`Disk` wraps `os.writev` and `os.write` for descriptors of files in the
buffer's directory only (segments and the ledger's temporary file): as a small
filesystem it answers with a short count and then ENOSPC once the files there
would pass its capacity, as tmpfs and ext4 do; or it fails every call (or a
seeded random share of them) with a given errno while `failing` is set.
The real filesystem test is tests/e2e/test_full_disk.py.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
from pathlib import Path
from typing import Any

import pytest

from collector.acks import AckTracker
from collector.buffer import disk, intake
from collector.buffer.base import Unit
from collector.buffer.ledger import read_ledger
from collector.buffer.memory import MemoryBuffer
from collector.testing import wait_for
from tests.unit.buffer.helpers import Calls, disk_bytes, drain, log_batch, make_buffer, segment_files, seqs


class Disk:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
        self.directory = str(directory.resolve())
        self.capacity: int | None = None  # bytes the files in the directory may take
        self.failing: int | None = None  # errno every (or a `share` of) write fails with
        self.share = 1.0
        self.random = random.Random(1313)
        self.refused = 0
        self._writev, self._write = os.writev, os.write
        monkeypatch.setattr(os, "writev", self.writev)
        monkeypatch.setattr(os, "write", self.write)

    def _ours(self, fd: int) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(self.directory + "/")
        except OSError:
            return False

    def used(self) -> int:
        return sum(e.stat().st_size for e in os.scandir(self.directory) if e.is_file())

    def _room(self, fd: int, want: int) -> int:
        """Bytes this write may put down (raises the injected error)."""
        if not self._ours(fd):
            return want
        if self.failing is not None and self.random.random() < self.share:
            self.refused += 1
            raise OSError(self.failing, os.strerror(self.failing))
        if self.capacity is None:
            return want
        room = max(0, self.capacity - self.used())
        if room == 0:
            self.refused += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return min(room, want)

    def writev(self, fd: int, buffers: list[Any]) -> int:
        data = b"".join(bytes(b) for b in buffers)
        room = self._room(fd, len(data))
        return self._write(fd, data[:room])

    def write(self, fd: int, data: Any) -> int:
        room = self._room(fd, len(data))
        return self._write(fd, bytes(data[:room]))


def no_partial_frames(directory: Path) -> None:
    """Every segment holds whole frames only (a refused write left nothing behind)."""
    from tests.unit.buffer.helpers import frames

    for path in segment_files(directory):
        whole = frames(path)
        assert (whole[-1].end if whole else 0) == path.stat().st_size, path


async def consume(buf: disk.DiskBuffer, got: list[Unit], until: int) -> None:
    while sum(len(u.batch.records) for u in got) < until:
        unit = await buf.pop()
        assert unit is not None
        got.append(unit)
        buf.ack(unit)


async def test_a_buffer_that_filled_the_disk_itself_frees_delivered_data_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: max_bytes far above the filesystem, the output held back until the disk is full."""
    monkeypatch.setattr(disk, "WRITE_RETRY_SECONDS", 0.05)
    fs = Disk(monkeypatch, tmp_path)
    fs.capacity = 64 * 1024
    # segment_bytes left at its default for 1 MiB: one segment is larger than the whole disk.
    buf = make_buffer(tmp_path, max_bytes=1 << 20, segment_bytes=None, fsync="interval", fsync_interval=0.05)
    await buf.open()
    tracker = AckTracker(lambda pos: None)
    total = 400  # ~200 KiB of frames: three times the disk

    async def produce() -> None:
        for i in range(total):
            await buf.push(log_batch(i, size=400, ack=tracker.token(i + 1)))

    producer = asyncio.create_task(produce())
    await wait_for(lambda: buf.condition().reason == "write_failing", timeout=5)
    cond = buf.condition()
    assert not cond.accepting and cond.error is not None and cond.error.startswith("ENOSPC")
    assert not producer.done()  # the input is held back, nothing dropped
    assert buf.metrics()["write_errors"] > 0
    committed_while_full = tracker.committed or 0
    assert committed_while_full < total

    got: list[Unit] = []
    await asyncio.wait_for(consume(buf, got, total), timeout=20)  # the output comes back
    await asyncio.wait_for(producer, timeout=5)
    assert seqs(got) == list(range(total))  # everything, in order, once
    assert buf.condition().accepting
    assert fs.refused > 0 and buf.metrics()["bytes"] <= fs.capacity
    await wait_for(lambda: tracker.committed == total, timeout=5)  # every input position committed
    no_partial_frames(tmp_path)
    await buf.close()


async def test_a_disk_full_even_for_the_ledger_deletes_delivered_segments_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(disk, "WRITE_RETRY_SECONDS", 0.05)
    fs = Disk(monkeypatch, tmp_path)
    buf = make_buffer(tmp_path, fsync="interval", fsync_interval=0.05, segment_bytes=4096)
    await buf.open()
    for i in range(40):
        await buf.push(log_batch(i, size=300))
    fs.capacity = fs.used()  # not one more byte: no frame, no ledger
    pushed = asyncio.create_task(buf.push(log_batch(40, size=300)))
    await wait_for(lambda: buf.condition().reason == "write_failing", timeout=5)
    units = drain(buf)
    for u in units:
        buf.ack(u)
    await asyncio.wait_for(pushed, timeout=5)  # room came from segments deleted before the ledger
    assert buf.metrics()["ledger_errors"] >= 1
    ledger = read_ledger(tmp_path)
    assert ledger is not None and ledger.segment > 1  # written once there was room
    assert len(segment_files(tmp_path)) <= 2
    assert seqs(drain(buf)) == [40]
    assert buf.condition().accepting
    await buf.close()


async def test_a_crash_between_the_early_unlink_and_the_ledger_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    buf = make_buffer(tmp_path, segment_bytes=4096)
    await buf.open()
    for i in range(30):
        await buf.push(log_batch(i, size=300))
    await buf._persist_and_reclaim()
    units = drain(buf)
    for u in units[:15]:
        buf.ack(u)
    fs = Disk(monkeypatch, tmp_path)
    fs.failing = errno.ENOSPC  # both ledger writes fail: the segments go, the old ledger stays
    before = read_ledger(tmp_path)
    with pytest.raises(OSError):
        await buf._persist_and_reclaim()
    assert read_ledger(tmp_path) == before
    assert before is not None and not (tmp_path / f"{before.segment:020d}.seg").exists()
    await buf._abort()
    fs.failing = None
    calls = Calls()
    again = make_buffer(tmp_path, calls)
    await again.open()
    replayed = seqs(drain(again))
    assert replayed[-15:] == list(range(15, 30))  # everything not acknowledged comes again
    assert set(replayed) <= set(range(30))  # and at most some acknowledged ones (duplicates)
    await again.close()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
async def test_every_write_failing_for_a_while_holds_the_input_then_stores_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setattr(disk, "WRITE_RETRY_SECONDS", 0.02)
    fs = Disk(monkeypatch, tmp_path)
    buf = make_buffer(tmp_path, fsync="always", segment_bytes=4096)
    await buf.open()
    tracker = AckTracker(lambda pos: None)
    await buf.push(log_batch(0, ack=tracker.token(1)))
    fs.failing = code
    pushed = asyncio.create_task(buf.push(log_batch(1, 3, ack=tracker.token(2))))
    await wait_for(lambda: buf.metrics()["write_errors"] >= 5, timeout=5)  # retried, refused every time
    assert not pushed.done() and tracker.committed == 1  # held back and not acknowledged to the input
    cond = buf.condition()
    assert cond.reason == "write_failing" and cond.blocked_seconds() > 0
    assert cond.error is not None and cond.error.startswith(errno.errorcode[code])
    fs.failing = None
    assert await asyncio.wait_for(pushed, timeout=5)
    assert tracker.committed == 2 and buf.condition().accepting
    assert seqs(drain(buf)) == [0, 1, 2, 3]
    assert buf.metrics()["bytes"] == disk_bytes(tmp_path)
    no_partial_frames(tmp_path)
    await buf.close()


async def test_random_write_errors_on_every_call_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(disk, "WRITE_RETRY_SECONDS", 0.001)
    fs = Disk(monkeypatch, tmp_path)
    fs.failing, fs.share = errno.EIO, 0.4  # seeded: 40% of all writes, frames and ledger alike
    buf = make_buffer(tmp_path, fsync="interval", fsync_interval=0.01, segment_bytes=4096)
    await buf.open()
    got: list[Unit] = []
    consumer = asyncio.create_task(consume(buf, got, 300))
    for i in range(0, 300, 3):
        await buf.push(log_batch(i, 3, size=200))
    await asyncio.wait_for(consumer, timeout=10)
    assert seqs(got) == list(range(300))
    assert fs.refused > 20 and buf.metrics()["write_errors"] > 20
    # Dozens of failures and recoveries: one ERROR line per interval, and one line for the recovery after it.
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("disk buffer cannot write; inputs are held back") == 1
    assert messages.count("disk buffer writes again") == 1
    assert (
        messages.count("disk buffer cannot write its ledger; retrying (delivered data is not deleted meanwhile)") <= 1
    )
    fs.failing = None
    await buf.close()
    no_partial_frames(tmp_path)


async def test_drop_newest_counts_what_a_full_disk_refuses_and_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = Disk(monkeypatch, tmp_path)
    calls = Calls()
    buf = make_buffer(tmp_path, calls, when_full="drop_newest")
    await buf.open()
    fs.failing = errno.ENOSPC
    for i in range(5):
        assert not await buf.push(log_batch(i, 2))
    assert calls.drops == [("write_error", 2)] * 5
    assert buf.condition().reason == "write_failing"
    fs.failing = None
    assert await buf.push(log_batch(10))
    assert buf.condition().accepting and seqs(drain(buf)) == [10]
    await buf.close()


async def test_full_and_accepting_conditions(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path, max_bytes=64 * 1024, segment_bytes=4096)
    await buf.open()
    assert buf.condition().accepting
    while buf.metrics()["bytes"] < 60 * 1024:
        await buf.push(log_batch(0, size=1000))
    waiting = asyncio.create_task(buf.push(log_batch(1, size=4000)))
    await wait_for(lambda: buf.condition().reason == "full", timeout=2)
    assert buf.condition().pending_events > 0
    for u in drain(buf):
        buf.ack(u)  # with a push waiting for room, the ledger is written and segments deleted at once
    await asyncio.wait_for(waiting, timeout=2)
    assert buf.condition().accepting
    await buf.close()

    mem = MemoryBuffer(max_events=2, max_bytes=1 << 20, when_full="block", on_drop=Calls().drop)
    await mem.push(log_batch(0, 2))
    blocked = asyncio.create_task(mem.push(log_batch(2)))
    await wait_for(lambda: not mem.condition().accepting, timeout=2)
    assert mem.condition().reason == "full"
    unit = await mem.pop()
    assert unit is not None
    mem.ack(unit)
    await asyncio.wait_for(blocked, timeout=2)
    assert mem.condition().accepting


async def test_drop_newest_refusals_fade_when_no_push_comes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing waits in drop_newest to find out that room came back: an idle buffer is not reported stuck."""
    monkeypatch.setattr(intake, "REFUSAL_MEMORY", 0.2)
    fs = Disk(monkeypatch, tmp_path)
    buf = make_buffer(tmp_path, when_full="drop_newest")
    await buf.open()
    fs.failing = errno.EIO
    assert not await buf.push(log_batch(0))
    first = buf.condition()
    assert first.reason == "write_failing"
    assert not await buf.push(log_batch(1))
    assert buf.condition().since == first.since  # one episode while refusals keep coming
    fs.failing = None
    await wait_for(lambda: buf.condition().accepting, timeout=2)
    await buf.close()

    mem = MemoryBuffer(max_events=1, max_bytes=1 << 20, when_full="drop_newest", on_drop=Calls().drop)
    await mem.push(log_batch(0))
    assert not await mem.push(log_batch(1))
    assert mem.condition().reason == "full"
    await wait_for(lambda: mem.condition().accepting, timeout=2)
