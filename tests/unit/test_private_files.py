"""Data files are 0600 and their directories 0700, whatever the umask (issue 13)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.buffer.ledger import LEDGER_FILE
from collector.checkpoint import CheckpointFile
from collector.dlq import DeadLetterQueue
from collector.private_files import private_dir
from collector.testing import component_context
from tests.unit.buffer.helpers import drain, log_batch, make_buffer, segment_files


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o277], ids=["umask-000", "umask-277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """A permissive umask (would widen to 0666/0777) and a hostile one (would leave the owner no write bit)."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


async def test_disk_buffer_segments_and_ledger(tmp_path: Path, umask: int) -> None:
    os.chmod(tmp_path, 0o755)
    directory = tmp_path / "data" / "buffers" / "out"
    buf = make_buffer(directory, fsync="interval", segment_bytes=4096)
    await buf.open()
    for i in range(30):  # several segments: created at open and by rolling
        await buf.push(log_batch(i, size=300))
    for unit in drain(buf):
        buf.ack(unit)
    await buf.close()  # writes the ledger
    assert len(segment_files(directory)) >= 1
    assert (directory / LEDGER_FILE).exists()
    for path in [directory / LEDGER_FILE, *segment_files(directory)]:
        assert mode(path) == 0o600, path
    for d in (directory, directory.parent, directory.parent.parent):
        assert mode(d) == 0o700, d
    assert mode(tmp_path) == 0o755  # an existing parent is the operator's: left alone


async def test_existing_files_and_directories_are_made_private(tmp_path: Path, umask: int) -> None:
    directory = tmp_path / "buf"
    directory.mkdir()
    os.chmod(directory, 0o755)
    checkpoint_dir = tmp_path / "components" / "in"
    checkpoint_dir.mkdir(parents=True)
    os.chmod(checkpoint_dir, 0o777)
    cp = CheckpointFile(checkpoint_dir / "files.json")
    cp.path.write_text("{}")
    os.chmod(cp.path, 0o666)
    cp.save({"offset": 1})
    assert mode(cp.path) == 0o600 and mode(checkpoint_dir) == 0o700
    assert cp.load() == {"offset": 1}
    buf = make_buffer(directory)
    await buf.open()
    await buf.close()
    assert mode(directory) == 0o700


def test_checkpoint_in_new_directories(tmp_path: Path, umask: int) -> None:
    cp = CheckpointFile(tmp_path / "a" / "b" / "state.json")
    cp.save({"x": 1})
    assert mode(cp.path) == 0o600
    assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700
    assert not (tmp_path / "a" / "b" / "state.json.tmp").exists()


def test_component_state_dir(tmp_path: Path, umask: int) -> None:
    ctx = component_context("in", tmp_path / "data")
    path = ctx.state_dir()
    assert mode(path) == 0o700 and mode(path.parent) == 0o700 and mode(tmp_path / "data") == 0o700


def test_dead_letters(tmp_path: Path, umask: int) -> None:
    dlq = DeadLetterQueue(tmp_path / "dead_letter" / "out", "out", 1 << 20)
    assert dlq.write("logs", [{"message": b"secret"}], ["rejected"]) == 0
    dlq.close()
    files = list((tmp_path / "dead_letter" / "out").glob("*.jsonl"))
    assert len(files) == 1 and mode(files[0]) == 0o600
    assert mode(files[0].parent) == 0o700 and mode(files[0].parent.parent) == 0o700


def test_private_dir_leaves_an_existing_data_dir_alone_when_asked(tmp_path: Path, umask: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    private_dir(shared, existing=False)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    private_dir(shared / "new", existing=False)
    assert mode(shared / "new") == 0o700


def test_trace_index_database_and_its_wal_files(tmp_path: Path, umask: int) -> None:
    from collector_plugins.common.trace_index import Entry, TraceIndex

    os.chmod(tmp_path, 0o755)
    path = tmp_path / "data" / "trace_index" / "recent.sqlite"
    index = TraceIndex(path, max_bytes=1024 * 1024)
    index.add([Entry("1-5759e988-bd862e3fe1be46a994272793", 1.0, "segment", "svc", "{}")])
    files = list(path.parent.iterdir())
    assert {p.name for p in files} >= {"recent.sqlite", "recent.sqlite-wal", "recent.sqlite-shm"}
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
    assert mode(path.parent) == 0o700
    index.close()
