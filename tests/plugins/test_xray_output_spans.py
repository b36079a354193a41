"""The `xray` output sending OTLP span records (converted to segment documents) to moto's X-Ray, read back with
BatchGetTraces; bad spans are dead-lettered alone, with their reason."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from collector.events import TRACES, Batch
from collector.send_result import Outcome
from collector.testing import wait_for
from collector_plugins.outputs.xray.output import XRayOutput, XRayOutputConfig
from tests.moto import MotoServer
from tests.plugins.otlp_spans import span_record, xray_style_trace_id
from tests.plugins.test_xray_output import Driven, context, make, segment, stored


def xray_id(trace_id: str) -> str:
    return f"1-{trace_id[:8]}-{trace_id[8:]}"


async def test_spans_and_segments_in_one_batch_arrive_as_documents(moto: MotoServer, tmp_path: Path) -> None:
    trace = xray_style_trace_id()
    root = span_record(trace_id=trace, kind="server", attributes={"http.request.method": "POST", "order.id": "o-1"})
    call = span_record(
        trace_id=trace,
        parent=root["span_id"],
        kind="client",
        name="POST",
        attributes={"peer.service": "payments", "http.response.status_code": 503},
    )
    step = span_record(trace_id=trace, parent=root["span_id"], kind="internal", name="load-cart")
    bad = span_record(trace_id=trace)
    bad["span_id"] = "0" * 16
    random_id = span_record(trace_id="f" * 32)  # a W3C random id: its first 32 bits are no recent time
    daemon = segment(1)  # a record from the `xray` input, sent byte for byte as before
    output = make(moto, tmp_path, indexed_attributes=["order.id"])
    await output.start()
    try:
        result = await output.send(Batch(TRACES, [root, bad, call, daemon, random_id, step]))
    finally:
        await output.stop()
    assert result.per_record == [Outcome.OK, Outcome.DROP, Outcome.OK, Outcome.OK, Outcome.DROP, Outcome.OK]
    assert result.record_reasons is not None
    assert result.record_reasons[1].startswith("invalid_span: invalid_span_id:")
    assert result.record_reasons[4].startswith("invalid_span: trace_id_not_xray:")
    documents = {i: orjson.loads(d) for i, d in stored(moto, [xray_id(trace)]).items()}
    assert set(documents) == {root["span_id"], call["span_id"], step["span_id"]}
    top = documents[root["span_id"]]
    assert top["trace_id"] == xray_id(trace) and top["name"] == "shop" and "type" not in top
    assert top["http"]["request"]["method"] == "POST" and top["annotations"] == {"order_id": "o-1"}
    remote = documents[call["span_id"]]
    assert (remote["type"], remote["parent_id"], remote["namespace"]) == ("subsegment", root["span_id"], "remote")
    assert remote["name"] == "payments" and remote["fault"] is True
    assert documents[step["span_id"]]["name"] == "load-cart"
    assert orjson.loads(stored(moto, [daemon["trace_id"]])[daemon["id"]]) == orjson.loads(daemon["raw"])
    assert output.counters()["spans_converted"] == 3 and output.counters()["spans_rejected"] == 2
    assert output.counters()["segments_sent"] == 4


async def test_random_trace_ids_are_sent_when_validation_is_skipped(moto: MotoServer, tmp_path: Path) -> None:
    span = span_record(trace_id="f" * 32)
    output = make(moto, tmp_path, skip_timestamp_validation=True)
    await output.start()
    try:
        result = await output.send(Batch(TRACES, [span]))
    finally:
        await output.stop()
    assert result.outcome is Outcome.OK and result.per_record is None
    assert set(stored(moto, [xray_id("f" * 32)])) == {span["span_id"]}


async def test_driver_batches_spans_by_50_and_dead_letters_bad_ones_alone(moto: MotoServer, tmp_path: Path) -> None:
    config = XRayOutputConfig.model_validate(
        {"type": "xray", "inputs": ["x"], "region": moto.region, "endpoint_url": moto.endpoint_url}
    )
    output = XRayOutput(config, context(tmp_path))
    calls: list[int] = []
    original = output._put

    async def counting_put(ids: list[str | None], documents: list[str]) -> Any:
        calls.append(len(documents))
        return await original(ids, documents)

    output._put = counting_put  # type: ignore[method-assign]
    driven = Driven(output, config, tmp_path)
    trace = xray_style_trace_id()
    spans = [span_record(trace_id=trace, name=f"step-{n}", kind="internal", parent="1" * 16) for n in range(120)]
    huge = span_record(trace_id=trace, attributes={"payload": "p" * 70_000})
    invalid = span_record(trace_id=trace, start=time.time())
    invalid["end_time_unix_nano"] = invalid["start_time_unix_nano"] - 1
    await output.start()
    driven.runner.start_intake()
    task = asyncio.create_task(driven.runner.deliver(output, config, driven.stopping))
    try:
        await driven.channel.send(Batch(TRACES, [*spans[:60], huge, invalid]))
        await driven.channel.send(Batch(TRACES, spans[60:]))
        await wait_for(lambda: driven.stats.sent_events == 120 and sum(driven.stats.dropped.values()) == 2, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await output.stop()
    assert max(calls) == 50 and sum(calls) == 120
    assert set(stored(moto, [xray_id(trace)])) == {s["span_id"] for s in spans}
    reasons = sorted(e["reason"] for e in driven.dead())
    assert reasons[0] == "invalid_span: invalid_time: end before start"
    assert reasons[1] == "record_too_large"


async def test_a_span_converted_for_sizing_is_not_converted_again(moto: MotoServer, tmp_path: Path) -> None:
    output = make(moto, tmp_path)
    conversions = 0
    convert = output._mapper.convert

    def counting(span: Any, now: float | None = None) -> str:
        nonlocal conversions
        conversions += 1
        return convert(span, now)

    output._mapper.convert = counting  # type: ignore[method-assign]
    span = span_record()
    size = output.record_size(span)
    await output.start()
    try:
        assert (await output.send(Batch(TRACES, [span]))).outcome is Outcome.OK
    finally:
        await output.stop()
    assert conversions == 1
    assert size == len(stored(moto, [xray_id(span["trace_id"])])[span["span_id"]].encode())
