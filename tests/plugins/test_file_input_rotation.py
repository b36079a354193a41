"""The `file` input across rotation: rename, copytruncate, truncation, deletion, inode reuse, descriptor cap."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from collector.testing import wait_for
from tests.plugins.file_input_support import Harness, append, numbered


@pytest.fixture
async def harness(tmp_path: Path) -> Any:
    h = Harness(tmp_path, rotate_wait="200ms", poll_interval="50ms")
    yield h
    if h.task is not None:
        await h.stop()


async def test_rename_rotation_reads_the_old_file_to_its_end_then_the_new_one(harness: Harness) -> None:
    log = harness.logs / "app.log"
    append(log, numbered("a", 0, 10))
    await harness.start()
    await harness.wait_messages(10)
    # The writer still holds the old file: lines it writes right before and after the rename land there.
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, numbered("a", 10, 5).encode())
        os.rename(log, harness.logs / "app.log.1")  # no longer matches *.log
        os.write(fd, numbered("a", 15, 5).encode())
    finally:
        os.close(fd)
    append(log, numbered("b", 0, 3))  # the writer reopened: a new file at the old name
    await harness.wait_messages(23)
    assert harness.messages[:20] == numbered("a", 0, 20).splitlines()
    assert harness.messages[20:] == numbered("b", 0, 3).splitlines()
    assert {r["file"] for r in harness.records} == {str(log)}
    input_ = harness.input
    assert input_ is not None
    assert input_.counters()["rotations"] == 1
    # Released after rotate_wait; its checkpoint entry goes once its last batch is acknowledged.
    await wait_for(lambda: input_.counters()["files_released"] == 1, timeout=3)
    await wait_for(lambda: str(harness.logs / "app.log.1") not in harness.offsets(), timeout=3)
    assert input_.counters()["files_open"] == 1


async def test_rename_into_another_directory_is_still_read_to_its_end(harness: Harness) -> None:
    archive = harness.tmp / "archive"  # not watched: no event tells where the file went
    archive.mkdir()
    log = harness.logs / "app.log"
    append(log, "one\n")
    await harness.start()
    await harness.wait_messages(1)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        os.rename(log, archive / "app.log")
        input_ = harness.input
        assert input_ is not None
        await wait_for(lambda: input_.counters()["rotations"] == 1, timeout=3)
        os.write(fd, b"written after the move\n")
    finally:
        os.close(fd)
    assert (await harness.wait_messages(2))[1] == "written after the move"


async def test_copytruncate_reads_the_unread_rest_from_the_copy(harness: Harness) -> None:
    log = harness.logs / "app.log"
    append(log, numbered("old", 0, 100))
    harness.gate.clear()  # downstream is full: the input is stuck after its first chunk
    await harness.start()
    await harness.wait_stuck()
    append(log, numbered("old", 100, 50))  # written before the rotation, not read yet
    shutil.copyfile(log, harness.logs / "app.log.1")  # logrotate copytruncate: copy, then truncate
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, numbered("new", 0, 20))
    harness.gate.set()
    await harness.wait_messages(170)
    await harness.wait_caught_up()
    assert harness.messages == numbered("old", 0, 150).splitlines() + numbered("new", 0, 20).splitlines()
    assert harness.input is not None
    figures = harness.input.counters()
    assert figures["truncations"] == 1 and figures["lost_bytes"] == 0


async def test_truncation_without_copy_starts_over_and_counts_what_was_lost(harness: Harness) -> None:
    log = harness.logs / "app.log"
    append(log, numbered("x", 0, 5))
    await harness.start()
    await harness.wait_messages(5)
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, "fresh\n")
    assert (await harness.wait_messages(6))[5] == "fresh"
    assert harness.input is not None and harness.input.counters()["truncations"] == 1


async def test_truncated_and_regrown_past_the_offset_is_detected_by_fingerprint(harness: Harness) -> None:
    log = harness.logs / "app.log"
    append(log, "short 1\nshort 2\n")
    await harness.start()
    await harness.wait_messages(2)
    # Rewritten in place, longer than before, before the input looks again: same inode, size > offset.
    harness.gate.clear()
    with open(log, "r+b") as f:
        f.truncate(0)
        f.write(b"rewritten line one\nrewritten line two\n")
    harness.gate.set()
    assert (await harness.wait_messages(4))[2:] == ["rewritten line one", "rewritten line two"]


async def test_deleted_file_is_read_to_its_end_then_released(harness: Harness) -> None:
    log = harness.logs / "app.log"
    append(log, numbered("d", 0, 3))
    harness.gate.clear()
    await harness.start()
    await harness.wait_stuck()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.unlink(log)
    os.write(fd, numbered("d", 3, 2).encode())  # the writer still appends to the deleted file
    os.close(fd)
    harness.gate.set()
    await harness.wait_messages(5)
    assert harness.messages == numbered("d", 0, 5).splitlines()
    input_ = harness.input
    assert input_ is not None
    await wait_for(lambda: input_.counters()["files_open"] == 0, timeout=3)
    await wait_for(lambda: harness.offsets() == {}, timeout=3)


async def test_inode_reuse_after_delete_and_create_is_a_new_file(harness: Harness) -> None:
    log = harness.logs / "app.log"
    append(log, "first file line 1\nfirst file line 2\n")
    await harness.start()
    await harness.wait_messages(2)
    input_ = harness.input
    assert input_ is not None
    first = os.stat(log).st_ino
    os.unlink(log)
    await wait_for(lambda: input_.counters()["files_open"] == 0, timeout=3)  # released: the inode is free
    # ext4 hands a freed inode out again at once; a few attempts in case another file took it.
    for attempt in range(10):
        append(log, f"second file {attempt}, longer than the first one was\n")
        if os.stat(log).st_ino == first or attempt == 9:
            break
        os.unlink(log)
    reused = os.stat(log).st_ino == first
    final = f"second file {attempt}, longer than the first one was"
    await wait_for(lambda: final in harness.messages, timeout=5)
    await harness.wait_caught_up()
    messages = harness.messages
    assert messages.count("first file line 1") == 1  # not read again
    assert messages.count(final) == 1 and messages[-1] == final  # read from its start, not skipped
    print(f"inode reused: {reused}")


async def test_descriptor_cap_closes_idle_files_and_reopens_them(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_open_files=2)
    for i in range(5):
        append(h.logs / f"f{i}.log", numbered(f"f{i}", 0, 3))
    await h.start()
    try:
        await h.wait_messages(15)
        assert h.input is not None
        assert h.input.counters()["files_open"] <= 2
        assert h.input.counters()["files_watched"] == 5
        for i in range(5):
            append(h.logs / f"f{i}.log", numbered(f"f{i}", 3, 1))
        await h.wait_messages(20)
        assert h.input.counters()["files_open"] <= 2
        assert sorted(h.messages) == sorted(m for i in range(5) for m in numbered(f"f{i}", 0, 4).splitlines())
    finally:
        await h.stop()


async def test_closed_file_renamed_away_is_found_by_inode(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_open_files=1, rotate_wait="200ms", poll_interval="50ms")
    append(h.logs / "a.log", "a1\n")
    append(h.logs / "b.log", "b1\n")
    await h.start()
    try:
        await h.wait_messages(2)
        assert h.input is not None
        closed = next(tf for tf in h.input.files.files.values() if tf.fd is None)
        name = Path(closed.path)
        append(name, "written before the rename\n")
        os.rename(name, name.with_suffix(".log.1"))
        await h.wait_messages(3)
        assert h.messages[2] == "written before the rename"
        assert h.input.counters()["lost_bytes"] == 0
    finally:
        await h.stop()
