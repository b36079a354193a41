from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from collector.api import ComponentContext
from collector.events import LOGS, METRICS, Batch, Metric
from collector_plugins.outputs.file.output import FileConfig, FileOutput, split_lines
from tests.small_filesystem import mounted_tmpfs


def make(ctx: ComponentContext, **options: Any) -> FileOutput:
    return FileOutput(FileConfig(type="file", inputs=["src"], **options), ctx)


def logs(start: int, count: int, size: int = 10) -> Batch:
    return Batch(LOGS, [{"seq": i, "message": "x" * size} for i in range(start, start + count)])


def sequences(path: Path) -> list[int]:
    return [orjson.loads(line)["seq"] for line in path.read_bytes().splitlines()]


async def test_json_lines_relative_to_data_dir_with_host(ctx: ComponentContext, tmp_path: Path) -> None:
    out = make(ctx, path="out/{host}/events.jsonl")
    assert out.path == tmp_path / "out" / "testhost" / "events.jsonl"
    await out.start()
    assert out.path.exists(), "opened (and parent directories created) at start"
    await out.write(Batch(LOGS, [{"timestamp": 1.0, "message": b"raw \xff"}, {"timestamp": 2.0, "message": "s"}]))
    await out.write(Batch(METRICS, [Metric("m", "counter", 1.0, {"a": "b"}, 3.0)]))
    await out.stop()
    lines = out.path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert [orjson.loads(line) for line in lines[:-1]] == [
        {"timestamp": 1.0, "message": "raw \ufffd"},
        {"timestamp": 2.0, "message": "s"},
        {"name": "m", "type": "counter", "value": 1.0, "tags": {"a": "b"}, "timestamp": 3.0},
    ]
    assert out.events == 3 and out.bytes == out.path.stat().st_size


async def test_appends_to_an_existing_file(ctx: ComponentContext, tmp_path: Path) -> None:
    target = tmp_path / "abs" / "app.log"
    target.parent.mkdir()
    target.write_bytes(b"existing\n")
    out = make(ctx, path=str(target), codec="text")
    await out.start()
    await out.write(Batch(LOGS, [{"message": "one"}, {"message": b"two"}]))
    await out.stop()
    assert target.read_bytes() == b"existing\none\ntwo\n"


async def test_a_line_cut_short_by_a_crash_is_ended_before_appending(ctx: ComponentContext, tmp_path: Path) -> None:
    target = tmp_path / "spans.jsonl"
    target.write_bytes(b'{"seq": 0, "message": "x"}\n{"seq": 1, "mess')  # kill -9 in the middle of a write
    out = make(ctx, path=str(target))
    await out.start()
    await out.write(logs(1, 2))  # the cut record again, from the buffer, and the next
    await out.stop()
    lines = target.read_bytes().splitlines()
    assert lines[1] == b'{"seq": 1, "mess', "the cut piece stays a line of its own"
    assert [orjson.loads(line)["seq"] for line in lines[2:]] == [1, 2]
    assert out.torn_lines_ended == 1 and out.counters()["torn_lines_ended"] == 1
    assert out.bytes == len(target.read_bytes()) - len(b'{"seq": 0, "message": "x"}\n{"seq": 1, "mess\n')


async def test_a_file_it_cannot_read_is_appended_to_without_the_check(
    ctx: ComponentContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector_plugins.outputs.file import paths

    real_open = os.open

    def write_only_to_us(path: Any, flags: int, *args: Any) -> int:  # a 0200 file, for a non-root collector
        if flags & (os.O_WRONLY | os.O_RDWR) == 0:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(paths.os, "open", write_only_to_us)
    target = tmp_path / "w.log"
    target.write_bytes(b"partial")
    out = make(ctx, path=str(target), codec="text")
    await out.write(Batch(LOGS, [{"message": "one"}]))
    await out.stop()
    monkeypatch.undo()
    assert target.read_bytes() == b"partialone\n", "cannot tell how it ends: appends as before"
    assert out.torn_lines_ended == 0


async def test_a_fifo_is_written_and_never_read(ctx: ComponentContext, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a consumer at the other end
    try:
        out = make(ctx, path=str(fifo), codec="text")
        await out.write(Batch(LOGS, [{"message": "one"}, {"message": "two"}]))
        await out.stop()
        assert os.read(reader, 100) == b"one\ntwo\n"
    finally:
        os.close(reader)


async def test_a_full_disk_leaves_whole_lines_and_the_retried_batch_lands_once(
    ctx: ComponentContext, tmp_path: Path
) -> None:
    with mounted_tmpfs(tmp_path / "small", "64k") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"f" * 40 * 1024)
        target = disk / "out.jsonl"
        out = make(ctx, path=str(target))
        await out.start()
        batch = logs(0, 300, size=90)  # ~30 KB of ~110-byte lines: more than the ~24 KB left
        with pytest.raises(OSError) as failed:
            await out.write(batch)
        assert failed.value.errno == errno.ENOSPC
        assert target.read_bytes().endswith(b"\n") or target.stat().st_size == 0, "the partial write was taken back"
        assert out.bytes == target.stat().st_size == out.counters()["bytes"]
        filler.unlink()  # space again: the driver's retry
        await out.write(batch)
        await out.stop()
        assert sequences(target) == list(range(300))
        assert out.torn_lines_ended == 0


async def test_a_failed_write_that_cannot_be_taken_back_is_ended_by_the_next(
    ctx: ComponentContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from collector_plugins.outputs.file import output as module

    target = tmp_path / "out.jsonl"
    out = make(ctx, path=str(target))
    real_write = os.write
    calls = 0

    def short_then_full(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, bytes(data[:7]))  # a short count...
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # ...then the disk is full

    def no_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(module.os, "write", short_then_full)
    monkeypatch.setattr(module.os, "ftruncate", no_truncate)
    with pytest.raises(OSError):
        await out.write(logs(0, 2))
    monkeypatch.undo()
    await out.write(logs(0, 2))  # the retry
    await out.stop()
    lines = target.read_bytes().splitlines()
    assert len(lines[0]) == 7 and [orjson.loads(line)["seq"] for line in lines[1:]] == [0, 1]
    assert out.torn_lines_ended == 1


async def test_write_without_start_opens_lazily_and_stop_closes(ctx: ComponentContext) -> None:
    out = make(ctx, path="lazy.jsonl")
    await out.stop()  # safe without start
    await out.write(logs(0, 3))
    assert out.counters()["open_files"] == 1
    await out.stop()
    assert out.counters()["open_files"] == 0
    assert sequences(out.path) == [0, 1, 2]


async def test_rotation_numbering_and_max_files(ctx: ComponentContext) -> None:
    out = make(ctx, path="rot/app.jsonl", max_bytes=1024, max_files=2)
    await out.start()
    line = len(orjson.dumps({"seq": 0, "message": "x" * 10})) + 1  # 30 bytes
    per_file = 1024 // line
    total = per_file * 6 + 5
    for start in range(0, total, 7):  # small batches: rotation happens between batches
        await out.write(logs(start, min(7, total - start)))
    await out.stop()
    directory = out.path.parent
    assert sorted(p.name for p in directory.iterdir()) == ["app.jsonl", "app.jsonl.1", "app.jsonl.2"]
    newest, older, oldest = out.path, directory / "app.jsonl.1", directory / "app.jsonl.2"
    kept = sequences(oldest) + sequences(older) + sequences(newest)
    assert kept == list(range(kept[0], total)), "the files hold a contiguous, ordered tail of the stream"
    for path in (newest, older, oldest):
        assert path.stat().st_size <= 1024
    assert older.stat().st_size > 1024 - 7 * line, "a file is rotated only when the next batch would not fit"
    assert out.rotations >= 5


async def test_a_batch_larger_than_max_bytes_is_split_at_lines(ctx: ComponentContext) -> None:
    out = make(ctx, path="big.jsonl", max_bytes=1024, max_files=10)
    await out.start()
    await out.write(logs(0, 200))  # about 6 KiB in one batch
    await out.stop()
    files = sorted(
        out.path.parent.glob("big.jsonl*"), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0
    )
    assert [p.name for p in files][-1] == "big.jsonl"
    assert all(p.stat().st_size <= 1024 for p in files)
    assert [s for p in files for s in sequences(p)] == list(range(200))


async def test_max_files_zero_keeps_only_the_current_file(ctx: ComponentContext) -> None:
    out = make(ctx, path="zero.jsonl", max_bytes=1024, max_files=0)
    await out.start()
    for start in range(0, 300, 10):
        await out.write(logs(start, 10))
    await out.stop()
    assert [p.name for p in out.path.parent.glob("zero.jsonl*")] == ["zero.jsonl"]
    assert sequences(out.path)[-1] == 299


async def test_no_rotation_when_max_bytes_is_null(ctx: ComponentContext) -> None:
    out = make(ctx, path="flat.jsonl", max_bytes=None, fsync=True)
    await out.start()
    await out.write(logs(0, 500))
    await out.stop()
    assert [p.name for p in out.path.parent.glob("flat.jsonl*")] == ["flat.jsonl"]
    assert sequences(out.path) == list(range(500))


async def test_restart_continues_rotation_from_file_size(ctx: ComponentContext) -> None:
    first = make(ctx, path="again.jsonl", max_bytes=1024)
    await first.start()
    await first.write(logs(0, 30))  # 900 bytes
    await first.stop()
    second = make(ctx, path="again.jsonl", max_bytes=1024)
    await second.start()
    await second.write(logs(30, 10))  # would exceed 1024 with what is already there
    await second.stop()
    assert sequences(second.path) == list(range(30, 40))
    assert sequences(second.path.with_name("again.jsonl.1")) == list(range(30))


async def test_one_write_call_per_batch(ctx: ComponentContext, monkeypatch: pytest.MonkeyPatch) -> None:
    out = make(ctx, path="calls.jsonl")
    await out.start()
    calls: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: Any) -> int:
        calls.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting_write)
    await out.write(logs(0, 1000))
    monkeypatch.undo()
    await out.stop()
    assert len(calls) == 1
    assert len(sequences(out.path)) == 1000


def test_split_lines() -> None:
    data = b"aaaa\nbb\ncccccccccc\nd\n"
    assert split_lines(data, 8) == [b"aaaa\nbb\n", b"cccccccccc\n", b"d\n"]
    assert split_lines(data, 100) == [data]
    assert b"".join(split_lines(data, 3)) == data


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"path": ""}, "path"),
        ({"path": "out/"}, "names a directory"),
        ({"path": "{nope x}.log"}, "invalid placeholder"),
        ({"path": "out/{app}"}, "must end with literal text"),
        ({"path": "out/{app}.1"}, "must end with literal text"),
        ({"path": "out/{app}/../x.jsonl"}, "'..' level after a placeholder"),
        ({"path": "out/{app}//x.jsonl"}, "'..' level after a placeholder"),
        ({"path": "out/{app}/./x.jsonl"}, "'..' level after a placeholder"),
        ({"path": "a", "max_open_files": 0}, "max_open_files"),
        ({"path": "a", "max_bytes": 100}, "at least 1024"),
        ({"path": "a", "max_files": -1}, "max_files"),
        ({"path": "a", "codec": "csv"}, "codec"),
    ],
)
def test_config_errors(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        FileConfig(type="file", inputs=["s"], **options)


async def test_a_name_that_is_no_host_fact_is_a_record_field(ctx: ComponentContext, tmp_path: Path) -> None:
    out = make(ctx, path="{zone}.log")
    assert out.path is None
    await out.write(Batch(LOGS, [{"zone": "a", "message": "1"}, {"message": "2"}]))
    await out.stop()
    assert (tmp_path / "a.log").exists() and (tmp_path / "unknown.log").exists()


def test_config_units() -> None:
    assert FileConfig(type="file", inputs=["s"], path="a", max_bytes="1GiB").max_bytes == 1024**3
    assert FileConfig(type="file", inputs=["s"], path="a").max_bytes == 100 * 1024 * 1024
