from __future__ import annotations

import asyncio
import io
import os
import threading
from typing import Any

import orjson
import pytest

from collector.api import ComponentContext
from collector.events import LOGS, METRICS, TRACES, Batch, Metric
from collector_plugins.common.record_encoding import encode_json, encode_text
from collector_plugins.outputs.stdout.output import Stdout, StdoutConfig, write_all


def make(ctx: ComponentContext, **options: Any) -> tuple[Stdout, io.BytesIO]:
    out = Stdout(StdoutConfig(type="stdout", inputs=["src"], **options), ctx)
    out.stream = io.BytesIO()
    return out, out.stream


async def test_json_lines_for_every_kind(ctx: ComponentContext) -> None:
    out, stream = make(ctx)
    await out.start()
    await out.write(
        Batch(LOGS, [{"timestamp": 1.5, "message": b"raw \xff", "n": 1}, {"timestamp": 2.0, "message": "s"}])
    )
    await out.write(Batch(METRICS, [Metric("m", "gauge", 3.0, {"k": "v"}, 4.0, "Count")]))
    await out.write(Batch(TRACES, [{"trace_id": "1-2-3", "id": "ab", "name": "x", "raw": b"{}"}]))
    await out.write(Batch(LOGS, []))
    await out.stop()
    lines = stream.getvalue().split(b"\n")
    assert lines[-1] == b"", "every line ends with a newline"
    docs = [orjson.loads(line) for line in lines[:-1]]
    assert docs == [
        {"timestamp": 1.5, "message": "raw \ufffd", "n": 1},
        {"timestamp": 2.0, "message": "s"},
        {"name": "m", "type": "gauge", "value": 3.0, "tags": {"k": "v"}, "timestamp": 4.0, "unit": "Count"},
        {"trace_id": "1-2-3", "id": "ab", "name": "x", "raw": "{}"},
    ]
    assert out.events == 4 and out.bytes == len(stream.getvalue())


async def test_text_codec(ctx: ComponentContext) -> None:
    out, stream = make(ctx, codec="text")
    await out.write(Batch(LOGS, [{"timestamp": 1.0, "message": "héllo"}, {"timestamp": 1.0, "message": "b"}]))
    await out.write(Batch(LOGS, [{"timestamp": 1.0, "message": b"raw \xff"}, {"timestamp": 1.0, "message": b"x"}]))
    await out.write(Batch(LOGS, [{"timestamp": 1.0, "message": "mixed"}, {"timestamp": 1.0, "message": b"kinds"}]))
    await out.write(Batch(LOGS, [{"timestamp": 1.0, "level": "no message"}, {"timestamp": 1.0, "message": 5}]))
    await out.write(Batch(METRICS, [Metric("m", "counter", 1.0)]))
    value = stream.getvalue()
    lines = value.split(b"\n")
    assert lines[:6] == ["héllo".encode(), b"b", b"raw \xff", b"x", b"mixed", b"kinds"]
    assert orjson.loads(lines[6]) == {"timestamp": 1.0, "level": "no message"}
    assert lines[7] == b"5"
    assert orjson.loads(lines[8])["name"] == "m"
    assert value.endswith(b"\n")


async def test_writes_to_sys_stdout(ctx: ComponentContext, capsys: pytest.CaptureFixture[str]) -> None:
    out = Stdout(StdoutConfig(type="stdout", inputs=["src"]), ctx)
    await out.write(Batch(LOGS, [{"timestamp": 1.0, "message": "to stdout"}]))
    assert orjson.loads(capsys.readouterr().out) == {"timestamp": 1.0, "message": "to stdout"}


def test_encoding_never_fails_on_odd_records() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd!"

    data = encode_json([{"a": Odd(), 1: "int key", "s": {1, 2}}, {"ok": True}])
    first, second, end = data.split(b"\n")
    assert orjson.loads(first) == {"a": "odd!", "1": "int key", "s": [1, 2]}
    assert orjson.loads(second) == {"ok": True} and end == b""
    assert encode_text([]) == b"" and encode_json([]) == b""


def test_write_all_waits_out_a_non_blocking_pipe() -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    data = os.urandom(1024 * 1024)  # far more than a pipe holds
    received = bytearray()

    def drain() -> None:
        while chunk := os.read(read_end, 65536):
            received.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        with os.fdopen(write_end, "wb") as stream:
            write_all(stream, data)
    finally:
        reader.join(5)
        os.close(read_end)
    assert bytes(received) == data


async def test_write_runs_off_the_loop(ctx: ComponentContext, wait_for: Any) -> None:
    entered, gate = threading.Event(), threading.Event()

    class SlowStream(io.BytesIO):
        def write(self, data: Any) -> int:
            entered.set()
            gate.wait(5)
            return super().write(data)

    out = Stdout(StdoutConfig(type="stdout", inputs=["src"]), ctx)
    out.stream = SlowStream()
    task = asyncio.ensure_future(out.write(Batch(LOGS, [{"timestamp": 1.0, "message": "m"}])))
    await wait_for(entered.is_set)
    assert not task.done(), "the loop runs while the write is blocked"
    gate.set()
    await asyncio.wait_for(task, 5)
    assert out.stream.getvalue() == b'{"timestamp":1.0,"message":"m"}\n'
