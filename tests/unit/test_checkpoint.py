"""Checkpoint files: replaced durably by a rename, damaged content refused, a failed write counted and raised."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.api import ComponentContext, HostFacts
from collector.checkpoint import CheckpointError, CheckpointFile
from collector.stats import ComponentStats
from collector.testing import component_context


def test_a_failed_save_is_counted_raised_and_leaves_the_old_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stats = ComponentStats("in", "inputs", "file")
    base = component_context("in", tmp_path)
    ctx = ComponentContext("in", base.logger, tmp_path, HostFacts("h"), checkpoint_failed=stats.checkpoint_failed)
    cp = ctx.checkpoint_file("files.json")
    cp.save({"offset": 1})
    real_write = os.write

    def full(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("files.json.tmp"):
            real_write(fd, bytes(data[:3]))  # a partial temporary file, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    for _ in range(3):
        with pytest.raises(OSError):
            cp.save({"offset": 2})
    assert stats.checkpoint_failures == 3 and stats.snapshot()["checkpoint_failures"] == 3
    assert cp.failures == 3
    assert cp.load() == {"offset": 1}
    assert not (tmp_path / "components" / "in" / "files.json.tmp").exists()  # no space kept by a dead temp file
    monkeypatch.undo()
    cp.save({"offset": 2})
    assert cp.load() == {"offset": 2} and stats.checkpoint_failures == 3


# -- the file itself: durable replace, damaged content, failures without a patched os ------------------------


def test_save_replaces_the_file_by_a_rename_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    cp = CheckpointFile(tmp_path / "state" / "pos.json")
    assert cp.load() is None  # nothing saved yet
    cp.save({"offset": 1, "files": ["a"]})
    first = os.stat(cp.path)
    with open(cp.path, "rb") as reader:  # a reader of the old file keeps a whole old file
        cp.save({"offset": 2, "files": ["a", "b"]})
        assert orjson.loads(reader.read()) == {"offset": 1, "files": ["a"]}
    second = os.stat(cp.path)
    assert second.st_ino != first.st_ino  # a new file renamed over the old one, never written in place
    assert cp.load() == {"offset": 2, "files": ["a", "b"]}
    assert stat.S_IMODE(second.st_mode) == 0o600 and stat.S_IMODE(os.stat(cp.path.parent).st_mode) == 0o700
    assert sorted(p.name for p in cp.path.parent.iterdir()) == ["pos.json"]
    assert cp.failures == 0


def test_a_temporary_file_left_by_a_crash_neither_counts_nor_gets_in_the_way(tmp_path: Path) -> None:
    cp = CheckpointFile(tmp_path / "pos.json")
    cp.save({"offset": 1})
    (tmp_path / "pos.json.tmp").write_bytes(b'{"offset": 2')  # the crash came before the rename
    assert cp.load() == {"offset": 1}  # the old content, whole
    cp.save({"offset": 3})
    assert cp.load() == {"offset": 3}
    assert not (tmp_path / "pos.json.tmp").exists()


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b'{"offset": 12, "fil', "is not valid JSON"),  # cut short (written in place by something else)
        (b"", "is not valid JSON"),  # created, never written
        (b'{"offset": 1}\x00\x00\x00\x00', "is not valid JSON"),  # a length extended past the data
        (b"\xff\xfe garbage", "is not valid JSON"),
        (b"[1, 2, 3]", "does not hold a JSON object"),
        (b"null", "does not hold a JSON object"),
    ],
)
def test_damaged_content_is_an_error_naming_the_file(tmp_path: Path, content: bytes, error: str) -> None:
    path = tmp_path / "pos.json"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=error) as info:
        CheckpointFile(path).load()
    assert str(path) in str(info.value)


def test_an_unreadable_file_is_an_error_not_a_missing_one(tmp_path: Path) -> None:
    (tmp_path / "pos.json").mkdir()  # something that exists and cannot be read as a file
    with pytest.raises(CheckpointError, match="cannot read"):
        CheckpointFile(tmp_path / "pos.json").load()


def test_a_save_that_cannot_create_its_directory_is_counted_reported_and_raised(tmp_path: Path) -> None:
    (tmp_path / "components").write_text("a file where the state directory must be")
    reported: list[OSError] = []
    cp = CheckpointFile(tmp_path / "components" / "in" / "pos.json", on_failure=reported.append)
    for _ in range(2):
        with pytest.raises(NotADirectoryError):
            cp.save({"offset": 1})
    assert cp.failures == 2 and [type(e) for e in reported] == [NotADirectoryError] * 2
    (tmp_path / "components").unlink()
    cp.save({"offset": 1})  # the next save after the cause is gone works, and is not counted
    assert cp.load() == {"offset": 1} and cp.failures == 2


def test_a_failed_rename_removes_the_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "pos.json"
    path.mkdir()
    (path / "occupied").touch()  # os.replace cannot put a file over a non-empty directory
    cp = CheckpointFile(path)
    with pytest.raises(OSError):
        cp.save({"offset": 1})
    assert cp.failures == 1
    assert not (tmp_path / "pos.json.tmp").exists()  # it would hold its space on a full disk
