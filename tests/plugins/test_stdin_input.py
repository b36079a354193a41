from __future__ import annotations

import asyncio
import logging
import os
import pty
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from pydantic import ValidationError

from collector.api import HostFacts, InputContext
from collector.events import LOGS, Batch
from collector_plugins.inputs.stdin.input import Stdin, StdinConfig


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    fds = [read_end, write_end]
    yield read_end, write_end
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass  # closed by the test


def make(input_ctx: InputContext, fd: int, **options: Any) -> Stdin:
    stdin = Stdin(StdinConfig(type="stdin", **options), input_ctx)
    stdin.fd = fd
    return stdin


def write_and_close(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)


async def test_lines_and_partial_last_line(input_ctx: InputContext, collected: Any, pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    write_and_close(write_end, "first\nsecond é\n\nlast without newline".encode())
    await asyncio.wait_for(make(input_ctx, read_end).run(input_ctx), 5)
    assert [r["message"] for r in collected.records] == ["first", "second é", "", "last without newline"]
    assert all(b.kind == LOGS for b in collected.batches)
    assert all(isinstance(r["timestamp"], float) for r in collected.records)
    # nbytes estimates the payload as the length of each message.
    assert sum(b.nbytes for b in collected.batches) == len("firstsecond élast without newline")


async def test_crlf_invalid_utf8_and_other_encodings(input_ctx: InputContext, collected: Any, pipe: Any) -> None:
    read_end, write_end = pipe
    write_and_close(write_end, b"dos line\r\nbad \xff byte\r\ncaf\xe9\n")
    await asyncio.wait_for(make(input_ctx, read_end).run(input_ctx), 5)
    assert [r["message"] for r in collected.records] == ["dos line", "bad \ufffd byte", "caf\ufffd"]


async def test_latin1_and_raw_bytes(input_ctx: InputContext, collected: Any, tmp_path: Path) -> None:
    for encoding, expected in (("latin-1", "café"), (None, b"caf\xe9")):
        collected.batches.clear()
        read_end, write_end = os.pipe()
        write_and_close(write_end, b"caf\xe9\n")
        try:
            await asyncio.wait_for(make(input_ctx, read_end, encoding=encoding).run(input_ctx), 5)
        finally:
            os.close(read_end)
        assert [r["message"] for r in collected.records] == [expected]


async def test_long_lines_are_truncated_and_logged_once(
    input_ctx: InputContext, collected: Any, pipe: Any, caplog: pytest.LogCaptureFixture
) -> None:
    read_end, write_end = pipe
    caplog.set_level(logging.WARNING, logger="test.plugin")
    data = b"short\n" + b"x" * 25 + b"\n" + b"y" * 11 + b"\ntail\n" + b"z" * 30
    write_and_close(write_end, data)
    stdin = make(input_ctx, read_end, max_line_bytes=10)
    await asyncio.wait_for(stdin.run(input_ctx), 5)
    records = collected.records
    assert [r["message"] for r in records] == ["short", "x" * 10, "y" * 10, "tail", "z" * 10]
    assert [r.get("truncated", False) for r in records] == [False, True, True, False, True]
    assert stdin.truncated == 3
    warnings = [r for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].fields["max_line_bytes"] == 10  # type: ignore[attr-defined]


async def test_long_line_across_chunks_is_cut_and_rest_discarded(
    input_ctx: InputContext, collected: Any, pipe: Any, wait_for: Any
) -> None:
    read_end, write_end = pipe
    stdin = make(input_ctx, read_end, max_line_bytes=10, batch_timeout=0.01)
    task = asyncio.ensure_future(stdin.run(input_ctx))
    os.write(write_end, b"a" * 6)
    await wait_for(lambda: stdin._partial == b"a" * 6)
    os.write(write_end, b"b" * 6)  # now 12 bytes without a newline: cut at 10
    await wait_for(lambda: len(collected.records) == 1)
    os.write(write_end, b"c" * 100)  # the rest of the same line: discarded
    os.write(write_end, b"ccc\nnext\n")
    await wait_for(lambda: len(collected.records) == 2)
    os.close(write_end)
    await asyncio.wait_for(task, 5)
    assert [(r["message"], r.get("truncated")) for r in collected.records] == [
        ("a" * 6 + "b" * 4, True),
        ("next", None),
    ]


async def test_batches_by_size(input_ctx: InputContext, collected: Any, pipe: Any) -> None:
    read_end, write_end = pipe
    write_and_close(write_end, b"".join(b"%d\n" % i for i in range(7)))
    await asyncio.wait_for(make(input_ctx, read_end, batch_size=3).run(input_ctx), 5)
    assert [len(b) for b in collected.batches] == [3, 3, 1]
    assert [r["message"] for r in collected.records] == [str(i) for i in range(7)]


async def test_batches_by_timeout(input_ctx: InputContext, collected: Any, pipe: Any, wait_for: Any) -> None:
    read_end, write_end = pipe
    stdin = make(input_ctx, read_end, batch_size=1000, batch_timeout=0.05)
    task = asyncio.ensure_future(stdin.run(input_ctx))
    os.write(write_end, b"one\ntwo\n")
    # The pipe stays open: only the timeout can flush these two lines.
    await wait_for(lambda: len(collected.batches) == 1, timeout=2)
    assert [r["message"] for r in collected.batches[0].records] == ["one", "two"]
    os.write(write_end, b"three\n")
    await wait_for(lambda: len(collected.batches) == 2, timeout=2)
    assert not task.done()
    os.close(write_end)
    await asyncio.wait_for(task, 5)
    assert [r["message"] for r in collected.records] == ["one", "two", "three"]


async def test_stop_flushes_what_was_read(input_ctx: InputContext, collected: Any, pipe: Any, wait_for: Any) -> None:
    read_end, write_end = pipe
    stdin = make(input_ctx, read_end, batch_timeout=10)
    task = asyncio.ensure_future(stdin.run(input_ctx))
    os.write(write_end, b"complete\npartial")
    await wait_for(lambda: stdin._partial == b"partial")
    input_ctx.stopping.set()
    await asyncio.wait_for(task, 2)
    assert [r["message"] for r in collected.records] == ["complete", "partial"]


async def test_regular_file_is_read_in_a_thread(input_ctx: InputContext, collected: Any, tmp_path: Path) -> None:
    path = tmp_path / "input.log"
    lines = [f"line {i} " + "x" * 50 for i in range(5000)]
    path.write_text("\n".join(lines) + "\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        stdin = make(input_ctx, fd, batch_size=1000)
        await asyncio.wait_for(stdin.run(input_ctx), 5)
    finally:
        os.close(fd)
    assert [r["message"] for r in collected.records] == lines
    assert stdin.lines == 5000


async def test_terminal_is_watched_by_the_loop(
    input_ctx: InputContext, collected: Any, wait_for: Any, caplog: pytest.LogCaptureFixture
) -> None:
    master, slave = pty.openpty()
    try:
        stdin = make(input_ctx, slave, batch_timeout=0.01)
        task = asyncio.ensure_future(stdin.run(input_ctx))
        os.write(master, b"typed line\n")
        await wait_for(lambda: len(collected.records) == 1)
        assert stdin._transport is not None
        input_ctx.stopping.set()
        await asyncio.wait_for(task, 2)
    finally:
        os.close(master)
        os.close(slave)
    assert collected.records[0]["message"] == "typed line"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_dev_null_ends_at_once(input_ctx: InputContext, collected: Any) -> None:
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        await asyncio.wait_for(make(input_ctx, fd).run(input_ctx), 5)
    finally:
        os.close(fd)
    assert collected.batches == []


async def test_closed_descriptor_finishes_with_a_warning(
    input_ctx: InputContext, collected: Any, caplog: pytest.LogCaptureFixture
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    caplog.set_level(logging.WARNING, logger="test.plugin")
    await asyncio.wait_for(make(input_ctx, read_end).run(input_ctx), 5)
    assert any("not open" in r.getMessage() for r in caplog.records)


async def test_backpressure_pauses_reading_without_loss(input_ctx: InputContext, pipe: Any, wait_for: Any) -> None:
    read_end, write_end = pipe
    received: list[Batch] = []
    gate = asyncio.Event()

    async def slow_emit(batch: Batch) -> None:
        await gate.wait()
        received.append(batch)

    input_ctx._emit = slow_emit
    stdin = make(input_ctx, read_end, batch_size=100)
    task = asyncio.ensure_future(stdin.run(input_ctx))
    total = 50_000
    writer = threading.Thread(target=write_and_close, args=(write_end, b"".join(b"%d\n" % i for i in range(total))))
    writer.start()
    # Reading pauses at 4 batches' worth of lines (+ at most one chunk) while the emit is blocked.
    await wait_for(lambda: stdin._paused)
    assert len(stdin._pending) < 4 * 100 + 64 * 1024 // 2
    assert writer.is_alive(), "the writer must be blocked by the full pipe"
    gate.set()
    await asyncio.wait_for(task, 10)
    writer.join(5)
    assert [r["message"] for b in received for r in b.records] == [str(i) for i in range(total)]


def test_runs_on_uvloop(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    batches: list[Batch] = []

    async def emit(batch: Batch) -> None:
        batches.append(batch)

    async def main() -> None:
        ctx = InputContext("stdin", logging.getLogger("test"), tmp_path, HostFacts("h"), emit, asyncio.Event())
        stdin = Stdin(StdinConfig(type="stdin"), ctx)
        stdin.fd = read_end
        threading.Thread(target=write_and_close, args=(write_end, b"a\nb\nc")).start()
        await asyncio.wait_for(stdin.run(ctx), 5)

    try:
        uvloop.run(main())
    finally:
        os.close(read_end)
    assert [r["message"] for b in batches for r in b.records] == ["a", "b", "c"]


def test_blocking_mode_is_restored(input_ctx: InputContext, tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        assert os.get_blocking(read_end)

        async def main() -> None:
            ctx = InputContext("s", logging.getLogger("t"), tmp_path, HostFacts("h"), _drop, asyncio.Event())
            stdin = Stdin(StdinConfig(type="stdin"), ctx)
            stdin.fd = read_end
            os.write(write_end, b"x\n")
            os.close(write_end)
            await asyncio.wait_for(stdin.run(ctx), 5)

        asyncio.run(main())
        assert os.get_blocking(read_end)
    finally:
        os.close(read_end)


async def _drop(batch: Batch) -> None:
    pass


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"encoding": "utf-16"}, "not ASCII-compatible"),
        ({"encoding": "no-such-codec"}, "unknown encoding"),
        ({"max_line_bytes": 0}, "max_line_bytes"),
        ({"batch_timeout": 0}, "batch_timeout"),
        ({"batch_size": 0}, "batch_size"),
        ({"path": "/dev/stdin"}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        StdinConfig(type="stdin", **options)


def test_config_normalises_encoding_and_units() -> None:
    config = StdinConfig(type="stdin", encoding="UTF8", max_line_bytes="1MiB", batch_timeout="250ms")
    assert (config.encoding, config.max_line_bytes, config.batch_timeout) == ("utf-8", 1024 * 1024, 0.25)
