"""Dead-letter files under faults: a line cut short by a kill -9, a disk that fills in the middle of a write."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from collector.dlq import DeadLetterQueue, read_dead_letters
from tests.small_filesystem import mounted_tmpfs


def records(n: int, start: int = 0, size: int = 10) -> list[dict[str, object]]:
    return [{"seq": i, "message": "x" * size, "raw": b"\xff\x00"} for i in range(start, start + n)]


def test_a_cut_line_is_passed_over_and_reported_not_fatal(tmp_path: Path) -> None:
    dlq = DeadLetterQueue(tmp_path, "out", 1 << 20)
    dlq.write("logs", records(3), ["rejected"] * 3)
    dlq.close()
    (path,) = tmp_path.glob("*.jsonl")
    text = path.read_bytes()
    second_line_start = text.index(b"\n") + 1
    # a hand edit in the middle, and the last line cut short by a kill
    damaged = text[:second_line_start] + b'{"not": "an entry"}\n' + text[second_line_start:] + b'{"time": 1, "rec'
    path.write_bytes(damaged)
    unreadable: list[bytes] = []
    entries = list(read_dead_letters(path, unreadable))
    assert [e["record"]["seq"] for e in entries] == [0, 1, 2]
    assert entries[0]["record"]["raw"] == b"\xff\x00"  # bytes still restored
    assert unreadable == [b'{"not": "an entry"}\n', b'{"time": 1, "rec']
    assert [e["record"]["seq"] for e in read_dead_letters(path)] == [0, 1, 2]  # without the list: the same


def test_a_full_disk_leaves_whole_lines_and_is_reported_to_the_caller(tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "64k") as disk:
        filler = disk / "filler"
        filler.write_bytes(b"f" * 40 * 1024)
        dlq = DeadLetterQueue(disk / "dead", "out", 1 << 20)
        dlq.write("logs", records(2), ["r"] * 2)
        with pytest.raises(OSError) as failed:
            dlq.write("logs", records(300, start=2, size=80), ["r"] * 300)  # ~45 KB: more than is left
        assert failed.value.errno == errno.ENOSPC
        (path,) = (disk / "dead").glob("*.jsonl")
        assert path.read_bytes().endswith(b"\n"), "the part that was written is cut off again"
        unreadable: list[bytes] = []
        assert [e["record"]["seq"] for e in read_dead_letters(path, unreadable)] == [0, 1] and unreadable == []
        filler.unlink()
        assert dlq.write("logs", records(300, start=2, size=80), ["r"] * 300) == 0
        dlq.close()
        assert [e["record"]["seq"] for e in read_dead_letters(path)] == list(range(302))
