"""The `file` input's checkpoints: written only from acknowledgements, trusted only if still true."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

from collector.testing import wait_for
from collector_plugins.inputs.file.checkpoints import CheckpointStore, FileCheckpoint
from collector_plugins.inputs.file.identity import EMPTY, Fingerprint
from collector_plugins.inputs.file.input import CHECKPOINT_INTERVAL
from tests.plugins.file_input_support import NAME, Harness, append, numbered


async def test_position_advances_only_when_acknowledged(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "app.log"
    append(log, numbered("a", 0, 100))
    h.hold_acks = True
    await h.start()
    try:
        await h.wait_messages(100)
        # Not a wait: nothing may be saved while the lines are unacknowledged, for more than a checkpoint interval.
        await asyncio.sleep(CHECKPOINT_INTERVAL + 0.3)
        assert h.offsets() == {str(log): 0}  # read, but nothing is durable yet
        h.ack_all()
        await wait_for(lambda: h.offsets() == {str(log): log.stat().st_size}, timeout=3)
    finally:
        await h.stop()


async def test_acknowledgements_of_one_file_do_not_move_another(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    a, b = h.logs / "a.log", h.logs / "b.log"
    append(a, "a1\n")
    append(b, "b1\n")
    h.hold_acks = True
    await h.start()
    try:
        await h.wait_messages(2)
        assert h.input is not None
        by_name = {Path(tf.path).name: tf for tf in h.input.files.files.values()}
        token_b = next(t for t in h.held if t.position == 3 and t._tracker is by_name["b.log"].tracker)
        token_b.release()  # b's batch is durable, a's is not
        h.held.remove(token_b)
        assert (by_name["a.log"].committed, by_name["b.log"].committed) == (0, 3)
    finally:
        await h.stop()


async def test_clean_restart_continues_exactly(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "app.log"
    append(log, numbered("a", 0, 50) + "incomplete")
    await h.start()
    await h.wait_messages(50)
    await h.stop()
    assert h.offsets() == {str(log): len(numbered("a", 0, 50))}  # not past the incomplete line
    append(log, " line\n" + numbered("b", 0, 5))
    await h.start()
    try:
        await h.wait_messages(56)
        await h.wait_caught_up()
        assert h.messages == [*numbered("a", 0, 50).splitlines(), "incomplete line", *numbered("b", 0, 5).splitlines()]
        assert h.input is not None and h.input.counters()["stale_checkpoints"] == 0
    finally:
        await h.stop()


async def test_unacknowledged_lines_are_read_again_after_a_restart(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "app.log"
    append(log, numbered("a", 0, 10))
    await h.start()
    await h.wait_messages(10)
    h.hold_acks = True
    append(log, numbered("a", 10, 10))
    await h.wait_messages(20)
    await h.stop(drain=False)  # as if the process died before the last batch was durable
    h.hold_acks = False
    await h.start()
    try:
        await h.wait_messages(30)
        assert h.messages[20:] == numbered("a", 10, 10).splitlines()  # at least once
    finally:
        await h.stop()


def write_checkpoint(h: Harness, entries: list[FileCheckpoint]) -> None:
    CheckpointStore(h.data / "components" / NAME).save(entries)


def entry_for(path: Path, offset: int, fingerprint_of: bytes | None = None) -> FileCheckpoint:
    st = path.stat()
    head = fingerprint_of if fingerprint_of is not None else path.read_bytes()[:1024]
    return FileCheckpoint(str(path), st.st_dev, st.st_ino, Fingerprint.of(head), offset)


async def test_offset_beyond_the_size_is_stale(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "app.log"
    append(log, "one\ntwo\n")
    write_checkpoint(h, [entry_for(log, 500)])
    await h.start()
    try:
        assert await h.wait_messages(2) == ["one", "two"]
        assert h.input is not None and h.input.counters()["stale_checkpoints"] == 1
    finally:
        await h.stop()


async def test_same_inode_with_other_first_bytes_is_stale(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "app.log"
    append(log, "a file that reused the inode\nsecond line\n")
    write_checkpoint(h, [entry_for(log, 10, fingerprint_of=b"the old file's first bytes")])
    await h.start()
    try:
        assert await h.wait_messages(2) == ["a file that reused the inode", "second line"]
        assert h.input is not None and h.input.counters()["stale_checkpoints"] == 1
    finally:
        await h.stop()


async def test_fingerprint_grows_with_the_file(tmp_path: Path) -> None:
    h = Harness(tmp_path, fingerprint_bytes=64)
    log = h.logs / "app.log"
    append(log, "short\n")
    await h.start()
    try:
        await h.wait_messages(1)
        append(log, "x" * 100 + "\n")
        await h.wait_messages(2)
        await wait_for(lambda: h.checkpoint()["files"][0]["fingerprint"]["bytes"] == 64, timeout=3)
    finally:
        await h.stop()
    assert h.checkpoint()["files"][0]["fingerprint"]["hash"] == Fingerprint.of(log.read_bytes()[:64]).digest


async def test_rename_while_stopped_reads_the_tail_of_the_renamed_file(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "app.log"
    append(log, numbered("old", 0, 5))
    await h.start()
    await h.wait_messages(5)
    await h.stop()
    append(log, numbered("old", 5, 3))  # written while the collector is down, then rotated
    os.rename(log, h.logs / "app.log.1")
    append(log, numbered("new", 0, 2))
    await h.start()
    try:
        await h.wait_messages(10)
        await h.wait_caught_up()
        assert sorted(h.messages[5:]) == sorted(numbered("old", 5, 3).splitlines() + numbered("new", 0, 2).splitlines())
    finally:
        await h.stop()


async def test_copytruncate_while_stopped_reads_the_tail_from_the_copy(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    log = h.logs / "app.log"
    append(log, numbered("old", 0, 5))
    await h.start()
    await h.wait_messages(5)
    await h.stop()
    append(log, numbered("old", 5, 3))
    shutil.copyfile(log, h.logs / "app.log.1")
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, numbered("new", 0, 30))  # longer than before: only the first bytes tell it changed
    await h.start()
    try:
        await h.wait_messages(38)
        await h.wait_caught_up()
        assert sorted(h.messages[5:]) == sorted(
            numbered("old", 5, 3).splitlines() + numbered("new", 0, 30).splitlines()
        )
        assert h.input is not None and h.input.counters()["stale_checkpoints"] == 1
    finally:
        await h.stop()


async def test_copytruncate_while_stopped_of_a_file_checkpointed_empty_reads_the_copy(tmp_path: Path) -> None:
    # The state a SIGKILL left behind: app.log was checkpointed just after a truncation, still empty (an empty
    # fingerprint matches any content); its next lines were read but not yet checkpointed when the process
    # died, and while it was down logrotate copied and truncated it again. The new content starts over at
    # offset 0, so only the time and name of the copy tell that its lines are ours.
    h = Harness(tmp_path)
    log = h.logs / "app.log"
    old_copy = h.logs / "app.log.2"
    append(old_copy, numbered("older", 0, 4))  # an earlier generation, read and released before the checkpoint
    past = time.time() - 60
    os.utime(old_copy, (past, past))
    log.touch()
    st = log.stat()
    saved = time.time() - 1
    write_checkpoint(h, [FileCheckpoint(str(log), st.st_dev, st.st_ino, EMPTY, 0, updated=saved)])
    append(log, numbered("old", 0, 6))
    shutil.copyfile(log, h.logs / "app.log.1")  # copytruncate while stopped
    with open(log, "r+b") as f:
        f.truncate(0)
    append(log, numbered("new", 0, 3))
    append(h.logs / "app.log.lock", "written since, but not a rotation of app.log\n")
    await h.start()
    try:
        await h.wait_messages(9)
        await h.wait_caught_up()
        assert sorted(h.messages) == sorted(numbered("old", 0, 6).splitlines() + numbered("new", 0, 3).splitlines())
        assert h.input is not None and h.input.counters()["stale_checkpoints"] == 1
    finally:
        await h.stop()


async def test_first_bytes_of_an_empty_file_are_checkpointed_at_once(tmp_path: Path) -> None:
    # An empty fingerprint identifies nothing: once the file has content, its fingerprint is saved without
    # waiting for an acknowledgement, so a truncation while the collector is down is seen by the fingerprint.
    h = Harness(tmp_path)
    log = h.logs / "app.log"
    log.touch()
    h.hold_acks = True  # no acknowledgement (no commit) triggers a save
    await h.start()
    try:
        await wait_for(lambda: len(h.checkpoint()["files"]) == 1, timeout=3)
        append(log, "first line\n")
        await h.wait_messages(1)
        await wait_for(lambda: h.checkpoint()["files"][0]["fingerprint"]["bytes"] > 0, timeout=3)
        assert h.offsets() == {str(log): 0}
    finally:
        h.ack_all()
        await h.stop()


async def test_held_multiline_record_is_never_committed_past(tmp_path: Path) -> None:
    h = Harness(tmp_path, multiline={"start": r"^\d", "timeout": "1h"})
    log = h.logs / "app.log"
    first = "1 first record\n  continued\n"
    append(log, first + "2 second record\n  still open\n")
    await h.start()
    await h.wait_messages(1)
    await h.stop()
    assert h.offsets() == {str(log): len(first)}  # the held record starts there
    append(log, "3 third\n")
    await h.start()
    try:
        await h.wait_messages(2)
        assert h.messages == ["1 first record\n  continued", "2 second record\n  still open"]
    finally:
        await h.stop()


async def test_unreadable_checkpoint_is_reported_and_reading_starts_over(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    (h.data / "components" / NAME).mkdir(parents=True)
    (h.data / "components" / NAME / "files.json").write_text("{not json")
    append(h.logs / "a.log", "x\n")
    await h.start()
    try:
        assert await h.wait_messages(1) == ["x"]
    finally:
        await h.stop()
    assert json.loads((h.data / "components" / NAME / "files.json").read_text())["version"] == 1
