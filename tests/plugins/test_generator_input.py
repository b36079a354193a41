from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from collector.api import InputContext
from collector.events import LOGS, METRICS, TRACES, Batch, Metric
from collector_plugins.inputs.generator.input import POOL_SIZE, Generator, GeneratorConfig, fit_json, fit_text


def make(ctx: Any, **options: Any) -> Generator:
    return Generator(GeneratorConfig(type="generator", **options), ctx)


def assert_contiguous(records: list[dict[str, Any]], start: int = 0) -> None:
    assert [r["sequence"] for r in records] == list(range(start, start + len(records)))


async def test_count_stops_and_batches_are_bounded(input_ctx: InputContext, collected: Any) -> None:
    gen = make(input_ctx, count=2500, batch_size=1000)
    await asyncio.wait_for(gen.run(input_ctx), 5)
    assert [len(b) for b in collected.batches] == [1000, 1000, 500]
    assert all(b.kind == LOGS for b in collected.batches)
    assert_contiguous(collected.records)
    assert gen.sequence == 2500
    record = collected.records[0]
    assert set(record) == {"timestamp", "message", "sequence"}
    assert isinstance(record["timestamp"], float) and abs(record["timestamp"] - time.time()) < 60


async def test_count_zero_emits_nothing(input_ctx: InputContext, collected: Any) -> None:
    await asyncio.wait_for(make(input_ctx, count=0).run(input_ctx), 5)
    assert collected.batches == []


_LINE_PATTERNS = {
    "text": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO |DEBUG|WARN |ERROR) \[worker-\d+\] \w+\.\w+ - .+$"),
    "apache_common": re.compile(
        r"^\d+\.\d+\.\d+\.\d+ - \S+ "
        r'\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "[A-Z]+ \S+ HTTP/1\.1" \d{3} \d+$'
    ),
    "syslog": re.compile(r"^<\d{1,3}>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ testhost \S+ \d+ ID\d+ - .+$"),
}


@pytest.mark.parametrize("fmt", ["text", "json", "apache_common", "syslog"])
async def test_formats(input_ctx: InputContext, collected: Any, fmt: str) -> None:
    await make(input_ctx, format=fmt, count=POOL_SIZE + 10, seed=1).run(input_ctx)
    messages = [r["message"] for r in collected.records]
    assert all(isinstance(m, str) for m in messages)
    assert len(set(messages)) > 50, "lines should vary"
    for m in messages:
        if fmt == "json":
            doc = orjson.loads(m)
            assert {"time", "level", "service", "msg"} <= doc.keys()
        else:
            assert _LINE_PATTERNS[fmt].match(m), m


@pytest.mark.parametrize("fmt", ["text", "json", "apache_common", "syslog"])
@pytest.mark.parametrize("size", [1, 20, 160, 200, 1000])
async def test_message_bytes_is_exact(input_ctx: InputContext, collected: Any, fmt: str, size: int) -> None:
    await make(input_ctx, format=fmt, message_bytes=size, count=1500, batch_size=700).run(input_ctx)
    assert {len(r["message"].encode()) for r in collected.records} == {size}
    assert sum(b.nbytes for b in collected.batches) == 1500 * size
    if fmt == "json" and size >= 160:
        for r in collected.records:
            orjson.loads(r["message"])


async def test_nbytes_is_the_sum_of_message_bytes(input_ctx: InputContext, collected: Any) -> None:
    # Batches of 700 over a pool of 512 wrap around the pool at varying offsets.
    await make(input_ctx, count=5000, batch_size=700).run(input_ctx)
    for batch in collected.batches:
        assert batch.nbytes == sum(len(r["message"].encode()) for r in batch.records)


async def test_fixed_message_and_non_ascii_padding(input_ctx: InputContext, collected: Any) -> None:
    await make(input_ctx, message="héllo wörld", message_bytes=9, count=3).run(input_ctx)
    # "héllo w" is 8 bytes and "ö" takes two: it is cut whole and one space pads to exactly 9 bytes.
    assert [r["message"] for r in collected.records] == ["héllo w "] * 3
    assert fit_text("aé", 2) == "a ", "a cut character is replaced by padding, never split"
    assert fit_text("abc", 5) == "abc  "


def test_fit_json_keeps_json_valid() -> None:
    line = orjson.dumps({"a": 1, "msg": "hello world"}).decode()
    for size in (len(line) - 11, len(line) - 3, len(line), len(line) + 40):
        fitted = fit_json(line, size)
        assert len(fitted) == size
        assert orjson.loads(fitted)["a"] == 1


async def test_lines_are_cycled(input_ctx: InputContext, collected: Any) -> None:
    await make(input_ctx, lines=["a", "b", "c"], count=7, batch_size=2).run(input_ctx)
    assert [r["message"] for r in collected.records] == ["a", "b", "c", "a", "b", "c", "a"]
    assert_contiguous(collected.records)
    assert [b.nbytes for b in collected.batches] == [2, 2, 2, 1]


async def test_rate_paces_batches(input_ctx: InputContext, collected: Any) -> None:
    started = time.monotonic()
    await asyncio.wait_for(make(input_ctx, rate=2000, count=300).run(input_ctx), 5)
    elapsed = time.monotonic() - started
    assert len(collected.records) == 300
    assert_contiguous(collected.records)
    assert 0.1 <= elapsed < 2.0, elapsed
    # About 50 ms worth of events per batch, not one batch of everything.
    assert max(len(b) for b in collected.batches) <= 200
    assert len(collected.batches) >= 3


async def test_stop_between_batches(input_ctx: InputContext, collected: Any) -> None:
    async def emit(batch: Batch) -> None:
        await collected(batch)
        if len(collected.batches) == 5:
            input_ctx.stopping.set()

    input_ctx._emit = emit
    gen = make(input_ctx, batch_size=100)
    await asyncio.wait_for(gen.run(input_ctx), 5)
    assert len(collected.batches) == 5
    assert_contiguous(collected.records)
    assert gen.sequence == 500


async def test_stop_interrupts_pacing_sleep(input_ctx: InputContext, collected: Any, wait_for: Any) -> None:
    gen = make(input_ctx, rate=0.5)  # the first event is due in 2 s
    task = asyncio.ensure_future(gen.run(input_ctx))
    await wait_for(lambda: gen.sequence == 0 and not task.done(), timeout=1)
    started = time.monotonic()
    input_ctx.stopping.set()
    await asyncio.wait_for(task, 1)
    assert time.monotonic() - started < 0.5
    assert collected.records == []


async def test_unpaced_run_yields_to_other_tasks(input_ctx: InputContext, collected: Any) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.ensure_future(ticker())
    try:
        await make(input_ctx, count=20_000, batch_size=100).run(input_ctx)
    finally:
        task.cancel()
    assert ticks >= 100


async def test_metrics(input_ctx: InputContext, collected: Any) -> None:
    config = GeneratorConfig(type="generator", kind="metrics", count=600)
    assert Generator.emitted_kinds(config) == frozenset({METRICS})
    await Generator(config, input_ctx).run(input_ctx)
    assert all(b.kind == METRICS and b.nbytes > 0 for b in collected.batches)
    metrics = collected.records
    assert len(metrics) == 600 and all(isinstance(m, Metric) for m in metrics)
    by_name = {m.name: m for m in metrics}
    assert by_name.keys() == {"generator.requests", "generator.queue_depth", "generator.latency_ms"}
    assert by_name["generator.requests"].type == "counter"
    assert set(by_name["generator.requests"].tags) == {"route", "status"}
    assert by_name["generator.queue_depth"].type == "gauge"
    latency = by_name["generator.latency_ms"]
    assert latency.type == "distribution" and latency.unit == "Milliseconds"
    assert isinstance(latency.value, list) and latency.value
    # Records never share mutable state, even when they repeat a pool entry.
    same = [m for m in metrics if m.name == "generator.latency_ms"]
    assert len({id(m.tags) for m in same}) == len(same)
    assert len({id(m.value) for m in same}) == len(same)


async def test_traces(input_ctx: InputContext, collected: Any) -> None:
    config = GeneratorConfig(type="generator", kind="traces", count=1200, batch_size=500)
    assert Generator.emitted_kinds(config) == frozenset({TRACES})
    await Generator(config, input_ctx).run(input_ctx)
    segments = collected.records
    assert all(b.kind == TRACES for b in collected.batches)
    assert len(segments) == 1200
    trace_id = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
    for s in segments:
        assert trace_id.match(s["trace_id"])
        assert re.fullmatch(r"[0-9a-f]{16}", s["id"])
        assert s["start_time"] <= s["end_time"]
        assert isinstance(s["name"], str) and s["name"]
    assert int(segments[0]["trace_id"][2:10], 16) == pytest.approx(time.time(), abs=60)
    assert len({s["id"] for s in segments}) == 1200
    assert [s["annotations"]["sequence"] for s in segments] == list(range(1200))
    orjson.dumps(segments)


async def test_seed_makes_output_reproducible(input_ctx: InputContext) -> None:
    first = make(input_ctx, format="json", seed=42).make_batch(50).records
    second = make(input_ctx, format="json", seed=42).make_batch(50).records
    assert [orjson.loads(r["message"])["msg"] for r in first] == [orjson.loads(r["message"])["msg"] for r in second]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"message": "a", "lines": ["b"]}, "either `message` or `lines`"),
        ({"kind": "metrics", "format": "json"}, "only apply to kind: logs"),
        ({"kind": "traces", "message_bytes": 100}, "only apply to kind: logs"),
        ({"format": "json", "message": "x"}, "`format` does not apply"),
        ({"message_bytes": 0}, "message_bytes"),
        ({"batch_size": 100_001}, "batch_size"),
        ({"rate": -1}, "rate"),
        ({"lines": []}, "lines"),
        ({"sequence": True}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(error)):
        GeneratorConfig(type="generator", **options)


def test_config_human_sizes() -> None:
    assert GeneratorConfig(type="generator", message_bytes="1KiB").message_bytes == 1024
