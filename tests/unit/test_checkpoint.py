"""A checkpoint that cannot be written is counted (and the error still reaches the caller)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from collector.api import ComponentContext, HostFacts
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
