"""The `file` input: discovery, reading, records, read_from, ignore_older, encodings, long lines, idleness."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from collector.testing import wait_for
from collector_plugins.inputs.file import input as file_input
from collector_plugins.inputs.file import tailed, watcher
from collector_plugins.inputs.file.input import FileInput, FileInputConfig
from tests.plugins.file_input_support import Harness, append, numbered


@pytest.fixture
async def harness(tmp_path: Path) -> Any:
    h = Harness(tmp_path)
    yield h
    if h.task is not None:
        await h.stop()


async def test_existing_file_is_read_with_path_and_host(harness: Harness) -> None:
    path = harness.logs / "app.log"
    path.write_bytes(b"first\r\nsecond \xc3\xa9\n\nlast without newline")
    await harness.start()
    assert await harness.wait_messages(3) == ["first", "second é", ""]
    record = harness.records[0]
    assert record["file"] == str(path) and record["host"] == "testhost"
    assert isinstance(record["timestamp"], float) and abs(record["timestamp"] - time.time()) < 5
    append(path, "!\n")  # the last line is emitted once complete, whole
    assert (await harness.wait_messages(4))[3] == "last without newline!"
    assert harness.input is not None and harness.input.counters()["lines"] == 4


async def test_new_files_and_growth_come_from_events(tmp_path: Path) -> None:
    # Scans and polls are far apart: only filesystem events can explain a prompt read.
    h = Harness(tmp_path, glob_interval="1h", poll_interval="1h")
    await h.start()
    try:
        append(h.logs / "new.log", "hello\n")
        await h.wait_messages(1, timeout=3)
        append(h.logs / "new.log", "again\n")
        append(h.logs / "ignored.txt", "not matched\n")
        assert await h.wait_messages(2, timeout=3) == ["hello", "again"]
    finally:
        await h.stop()


async def test_polling_finds_files_without_events(tmp_path: Path) -> None:
    h = Harness(tmp_path, use_events=False, glob_interval="100ms", poll_interval="50ms")
    await h.start()
    try:
        assert h.input is not None and h.input.watcher is None
        append(h.logs / "a.log", "one\n")
        await h.wait_messages(1)
        append(h.logs / "a.log", "two\n")
        assert await h.wait_messages(2) == ["one", "two"]
    finally:
        await h.stop()


async def test_falls_back_to_polling_when_events_are_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from watchdog.observers import api

    def no_inotify(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise OSError(24, "inotify instance limit reached")

    monkeypatch.setattr(api.BaseObserver, "schedule", no_inotify)
    h = Harness(tmp_path, glob_interval="100ms", poll_interval="50ms")
    await h.start()
    try:
        assert h.input is not None and h.input.watcher is not None and h.input.watcher.failed
        append(h.logs / "a.log", "one\n")
        await h.wait_messages(1)
        append(h.logs / "a.log", "two\n")
        assert await h.wait_messages(2) == ["one", "two"]
    finally:
        await h.stop()
    assert any("filesystem events unavailable" in r.getMessage() for r in caplog.records)


async def test_recursive_include_and_exclude(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "a" / "b").mkdir(parents=True)
    h = Harness(tmp_path, include=[str(logs / "**" / "*.log")], exclude=["skip-*", str(logs / "a" / "b" / "no.log")])
    append(logs / "top.log", "top\n")
    append(logs / "a" / "b" / "deep.log", "deep\n")
    append(logs / "a" / "b" / "no.log", "excluded by path\n")
    append(logs / "a" / "skip-me.log", "excluded by name\n")
    await h.start()
    try:
        await h.wait_messages(2)
        (logs / "a" / "c").mkdir()  # a directory created later, and a file in it: events on the new directory
        append(logs / "a" / "c" / "later.log", "later\n")
        await h.wait_messages(3)
        assert sorted(h.messages) == ["deep", "later", "top"]
    finally:
        await h.stop()


async def test_read_from_end_applies_to_existing_files_only(tmp_path: Path) -> None:
    h = Harness(tmp_path, read_from="end")
    append(h.logs / "old.log", "old 1\nold 2\npartial")
    await h.start()
    try:
        append(h.logs / "old.log", " line\nnew\n")
        append(h.logs / "created.log", "created 1\n")  # created while running: from its beginning
        await h.wait_messages(3)
        assert sorted(h.messages) == ["created 1", "new", "partial line"]
    finally:
        await h.stop()


async def test_ignore_older_skips_old_content_but_reads_new_lines(tmp_path: Path) -> None:
    h = Harness(tmp_path, ignore_older="1h")
    old = h.logs / "old.log"
    append(old, "ancient\n")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    append(h.logs / "fresh.log", "fresh\n")
    await h.start()
    try:
        await h.wait_messages(1)
        assert h.input is not None and h.input.counters()["files_open"] == 1  # the old one is not even open
        append(old, "appended later\n")
        assert sorted(await h.wait_messages(2)) == ["appended later", "fresh"]
    finally:
        await h.stop()


async def test_long_lines_are_truncated_marked_and_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(file_input, "READ_SIZE", 64)  # the long line spans several chunks
    h = Harness(tmp_path, max_line_bytes=20)
    caplog.set_level(logging.WARNING)
    append(h.logs / "a.log", "short\n" + "x" * 150 + "\n" + "é" * 15 + "\nnext\n" + "z" * 25)
    await h.start()
    try:
        await h.wait_messages(5)
        records = h.records
        assert [r["message"] for r in records] == ["short", "x" * 20, "é" * 10, "next", "z" * 20]
        assert [r.get("truncated", False) for r in records] == [False, True, True, False, True]
        assert h.losses == {"line_too_long": 3}
        assert h.input is not None and h.input.counters()["truncated_lines"] == 3
    finally:
        await h.stop()
    assert len([r for r in caplog.records if "max_line_bytes" in r.getMessage()]) == 1


async def test_lines_across_small_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_input, "READ_SIZE", 7)
    h = Harness(tmp_path)
    text = numbered("line", 0, 200)
    append(h.logs / "a.log", text)
    await h.start()
    try:
        assert await h.wait_messages(200) == text.splitlines()
        assert h.input is not None
        assert all(len(b.records) <= 2 for b in h.batches)  # one batch per chunk
    finally:
        await h.stop()


@pytest.mark.parametrize(
    ("encoding", "data", "expected"),
    [
        ("utf-16", "\ufeffzwei\r\nLinien ä\n".encode("utf-16-le"), ["zwei", "Linien ä"]),
        ("utf-16", b"\xfe\xff" + "big\nendian\n".encode("utf-16-be"), ["big", "endian"]),
        # U+0A41 U+4100 hold the bytes 0A 00 across two characters: not a newline.
        ("utf-16-le", "\u0a41\u4100\nx\n".encode("utf-16-le"), ["\u0a41\u4100", "x"]),
        ("latin-1", "café\n".encode("latin-1"), ["café"]),
        ("utf-8", b"\xef\xbb\xbfbom\nbad \xff\xfe byte\n", ["bom", "bad \ufffd\ufffd byte"]),
        (None, b"raw \xff\r\nbytes\n", [b"raw \xff", b"bytes"]),
    ],
)
async def test_encodings(tmp_path: Path, encoding: str | None, data: bytes, expected: list[Any]) -> None:
    h = Harness(tmp_path, encoding=encoding)
    append(h.logs / "a.log", data)
    await h.start()
    try:
        assert await h.wait_messages(len(expected)) == expected
        assert h.input is not None
        assert h.input.counters()["invalid_bytes"] == (2 if encoding == "utf-8" else 0)
    finally:
        await h.stop()


async def test_source_fields_hook(tmp_path: Path) -> None:
    calls: list[str] = []

    class Tagged(FileInput):
        def source_fields(self, path: str) -> dict[str, Any]:
            calls.append(path)
            return {"app": Path(path).stem}

    h = Harness(tmp_path)
    h.cls = Tagged
    append(h.logs / "billing.log", "a\nb\n")
    await h.start()
    try:
        await h.wait_messages(2)
        append(h.logs / "billing.log", "c\n")
        await h.wait_messages(3)
    finally:
        await h.stop()
    assert [r["app"] for r in h.records] == ["billing"] * 3
    assert calls == [str(h.logs / "billing.log")]  # once per file, not per chunk


async def test_idle_input_sleeps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rounds = 0
    original = FileInput._read_round

    async def counting(self: FileInput, ctx: Any) -> bool:
        nonlocal rounds
        rounds += 1
        return await original(self, ctx)

    monkeypatch.setattr(FileInput, "_read_round", counting)
    h = Harness(tmp_path, poll_interval="10ms")  # events cover these files: polling them is not needed
    append(h.logs / "a.log", "x\n")
    await h.start()
    try:
        await h.wait_messages(1)
        await h.wait_caught_up()
        before = rounds
        await asyncio.sleep(1.0)  # not a wait: the subject is how little an idle input does for 1 s
        assert rounds - before <= 1  # asleep until an event, the next scan (10 s) or a timeout
        append(h.logs / "a.log", "y\n")
        await h.wait_messages(2)
    finally:
        await h.stop()


async def test_backpressure_stops_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_input, "READ_SIZE", 1000)
    h = Harness(tmp_path)
    append(h.logs / "a.log", numbered("l", 0, 5000))
    h.gate.clear()  # downstream full
    await h.start()
    try:
        await h.wait_stuck()
        assert h.input is not None
        tf = next(iter(h.input.files.files.values()))
        assert tf.read_pos <= 1000  # one chunk read, waiting in emit
        h.gate.set()
        await h.wait_messages(5000)
    finally:
        await h.stop()


def test_watchdog_handler_coalesces_bursts() -> None:
    loop = asyncio.new_event_loop()
    wakes: list[int] = []
    try:
        w = watcher.EventWatcher(loop, [], lambda: wakes.append(1), logging.getLogger("t"))

        class Event:
            event_type, src_path, dest_path, is_directory = "modified", "/x/a.log", "", False

        for _ in range(100):
            w._record(Event())
        loop.call_soon(loop.stop)
        loop.run_forever()
        assert len(wakes) == 1
        assert [c.path for c in w.take()] == ["/x/a.log"]
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"include": []}, "at least 1 item"),
        ({"include": ["relative/*.log"]}, "not an absolute path"),
        ({"encoding": "no-such-codec"}, "unknown encoding"),
        ({"encoding": "iso2022_jp"}, "stateful"),
        ({"max_line_bytes": 4}, "max_line_bytes"),
        ({"fingerprint_bytes": 8}, "fingerprint_bytes"),
        ({"multiline": {"timeout": "1s"}}, "exactly one of"),
        ({"multiline": {"start": "(", "timeout": "1s"}}, "invalid regular expression"),
        ({"format": "cri", "encoding": "latin-1"}, "UTF-8 only"),
        ({"encoding": None, "multiline": {"start": "^x"}}, "needs text"),
        ({"poll_interval": 0}, "at least 10ms"),
        ({"path": "/x"}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        FileInputConfig(type="file", **{"include": ["/var/log/*.log"], **options})


def test_config_defaults_and_units() -> None:
    config = FileInputConfig(type="file", include=["~/logs/*.log"], encoding="UTF8", rotate_wait="250ms")
    assert (config.read_from, config.encoding, config.rotate_wait, config.max_line_bytes) == (
        "beginning",
        "utf-8",
        0.25,
        102400,
    )


async def test_chunk_processing_counts_bytes_and_lines(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    append(h.logs / "a.log", numbered("n", 0, 1000))
    await h.start()
    try:
        await h.wait_messages(1000)
        assert h.input is not None
        figures = h.input.counters()
        assert figures["lines"] == 1000 and figures["bytes"] == len(numbered("n", 0, 1000))
        assert sum(b.nbytes for b in h.batches) == figures["bytes"] - 1000  # newlines are not payload
        await wait_for(lambda: h.input is not None and h.input.counters()["unread_bytes"] == 0)
        assert tailed.READ_SIZE >= 256 * 1024  # large chunks by default
    finally:
        await h.stop()


async def test_links_into_unwatched_directories_are_polled(tmp_path: Path) -> None:
    # Like /var/log/containers/*.log -> /var/log/pods/...: writes to the target raise no event where we watch.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "real.log"
    append(target, "one\n")
    h = Harness(tmp_path, glob_interval="1h", poll_interval="50ms")
    os.symlink(target, h.logs / "link.log")
    await h.start()
    try:
        await h.wait_messages(1)
        append(target, "two\n")
        assert await h.wait_messages(2, timeout=3) == ["one", "two"]
        assert h.records[0]["file"] == str(h.logs / "link.log")
    finally:
        await h.stop()
