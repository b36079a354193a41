"""The `xray` output against moto's X-Ray (PutTraceSegments, BatchGetTraces), through the real driver."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from collector.api import ComponentContext, HostFacts
from collector.buffer.memory import MemoryBuffer
from collector.channel import Channel
from collector.dlq import DeadLetterQueue, dead_letter_files, dlq_dir, read_dead_letters
from collector.events import TRACES, Batch
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner, effective_limits
from collector.send_result import Outcome
from collector.stats import ComponentStats
from collector.testing import free_port, wait_for
from collector_plugins.outputs.xray import limits as xray_limits
from collector_plugins.outputs.xray.output import XRayOutput, XRayOutputConfig
from collector_plugins.outputs.xray.telemetry import connection_error_kind
from tests.moto import MotoServer


def segment(n: int, trace: int = 0, **extra: Any) -> dict[str, Any]:
    """A record as the `xray` input makes it, with an odd but valid spelling in `raw`."""
    now = time.time()
    trace_id = f"1-{int(now):08x}-{trace:024x}"
    segment_id = f"{n:016x}"
    body = {"name": f"svc-{n}", "id": segment_id, "trace_id": trace_id, "start_time": now - 0.5, "end_time": now}
    body.update(extra)
    raw = orjson.dumps(body).replace(b'","', b'",  "')  # spacing the output must not normalise
    return {"raw": raw, "trace_id": trace_id, "id": segment_id, "name": body["name"], "start_time": now - 0.5}


def sized(n: int, size: int) -> dict[str, Any]:
    """A segment record whose document is exactly `size` bytes."""
    record = segment(n, metadata={"pad": ""})
    raw = record["raw"]
    record["raw"] = raw.replace(b'"pad":""', b'"pad":"' + b"p" * (size - len(raw)) + b'"')
    assert len(record["raw"]) == size and orjson.loads(record["raw"])
    return record


def context(tmp_path: Path, name: str = "xray_out") -> ComponentContext:
    return ComponentContext(name, logging.getLogger("test.xray_out"), tmp_path, HostFacts("node-1"))


def make(moto: MotoServer, tmp_path: Path, **options: Any) -> XRayOutput:
    body = {"type": "xray", "inputs": ["x"], "region": moto.region, "endpoint_url": moto.endpoint_url, **options}
    return XRayOutput(XRayOutputConfig.model_validate(body), context(tmp_path))


def stored(moto: MotoServer, trace_ids: list[str]) -> dict[str, str]:
    """Segment id -> document as X-Ray (moto) holds it."""
    traces = moto.client("xray").batch_get_traces(TraceIds=sorted(set(trace_ids)))["Traces"]
    return {s["Id"]: s["Document"] for t in traces for s in t["Segments"]}


async def test_documents_arrive_byte_for_byte(moto: MotoServer, tmp_path: Path) -> None:
    output = make(moto, tmp_path)
    await output.start()
    try:
        records = [segment(n, trace=n % 3) for n in range(7)]
        records[0]["raw"] = records[0]["raw"].replace(b'"svc-0"', b'"caf\\u00e9 \xc3\xa9"')
        result = await output.send(Batch(TRACES, records))
    finally:
        await output.stop()
    assert result.per_record is None and result.outcome is Outcome.OK
    documents = stored(moto, [r["trace_id"] for r in records])
    assert {i: d.encode() for i, d in documents.items()} == {r["id"]: r["raw"] for r in records}
    assert output.counters()["segments_sent"] == 7


async def test_record_without_raw_is_sent_as_json(moto: MotoServer, tmp_path: Path) -> None:
    now = time.time()
    record = {
        "trace_id": f"1-{int(now):08x}-{'a' * 24}",
        "id": "53995c3f42cd8ad8",
        "name": "gen",
        "start_time": now - 1,
        "end_time": now,
        "annotations": {"sequence": 7},
    }
    output = make(moto, tmp_path)
    await output.start()
    try:
        await output.write(Batch(TRACES, [record]))
    finally:
        await output.stop()
    assert orjson.loads(stored(moto, [record["trace_id"]])["53995c3f42cd8ad8"]) == record


async def test_rejected_documents_are_dropped_and_the_rest_accepted(moto: MotoServer, tmp_path: Path) -> None:
    good = [segment(n) for n in range(3)]
    nameless = segment(10)
    nameless["raw"] = orjson.dumps({k: v for k, v in orjson.loads(nameless["raw"]).items() if k != "name"})
    unreadable = {"raw": b'{"id": "00000000000000ff", "trace_id": ', "id": "00000000000000ff"}  # X-Ray sees no id
    output = make(moto, tmp_path)
    await output.start()
    try:
        result = await output.send(Batch(TRACES, [good[0], nameless, good[1], unreadable, good[2]]))
    finally:
        await output.stop()
    assert result.per_record == [Outcome.OK, Outcome.DROP, Outcome.OK, Outcome.DROP, Outcome.OK]
    assert result.record_reasons is not None
    assert result.record_reasons[1].startswith("MissingParam") and result.record_reasons[3].startswith(
        "JSONFormatError"
    )
    assert set(stored(moto, [good[0]["trace_id"]])) == {r["id"] for r in good}
    assert output.counters()["segments_unprocessed"] == 2


def test_unprocessed_entries_are_matched_by_id_and_classified(tmp_path: Path) -> None:
    output = XRayOutput(XRayOutputConfig(type="xray", inputs=["x"], region="eu-west-1"), context(tmp_path))
    records = [segment(1), segment(2), segment(2, in_progress=True), segment(3), segment(4)]
    documents = [r["raw"].decode() for r in records]
    answer = [
        {"Id": records[1]["id"], "ErrorCode": "ThrottledException", "Message": "slow down"},
        {"Id": records[3]["id"], "ErrorCode": "InvalidSegment", "Message": "trace too large"},
        {"Id": records[4]["id"], "ErrorCode": "InternalFailure"},
        {"Id": "ffffffffffffffff", "ErrorCode": "InvalidSegment"},  # matches nothing: logged, not guessed
    ]
    result = output._per_record([r["id"] for r in records], documents, answer)
    # The in-progress document shares its segment's id, so it shares the answer.
    assert result.per_record == [Outcome.OK, Outcome.RETRY, Outcome.RETRY, Outcome.DROP, Outcome.RETRY]
    assert result.record_reasons == [
        "",
        "ThrottledException: slow down",
        "ThrottledException: slow down",
        "InvalidSegment: trace too large",
        "InternalFailure",
    ]


async def test_unreachable_endpoint_is_retried_and_counted_for_telemetry(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    output = XRayOutput(
        XRayOutputConfig(type="xray", inputs=["x"], region="eu-west-1", endpoint_url=closed, connect_timeout=1),
        context(tmp_path),
    )
    await output.start()
    try:
        result = await output.send(Batch(TRACES, [segment(1)]))
    finally:
        await output.stop()
    assert result.outcome is Outcome.RETRY and result.per_record is None
    assert output.telemetry.errors["ConnectionRefusedCount"] == 1


def test_limits_and_their_edges(tmp_path: Path) -> None:
    assert xray_limits.LIMITS.max_events is not None and xray_limits.LIMITS.max_events.value == 50
    config = XRayOutputConfig(type="xray", inputs=["x"], region="eu-west-1")
    limits = effective_limits(XRayOutput, config)
    assert (limits.max_events, limits.max_record_bytes, limits.timeout) == (50, 64 * 1024, 1.0)
    lowered = XRayOutputConfig(type="xray", inputs=["x"], region="eu-west-1", batch={"max_events": 10})
    assert effective_limits(XRayOutput, lowered).max_events == 10
    output = XRayOutput(config, context(tmp_path))
    # Sizes are the document's UTF-8 bytes, whatever form the record holds it in.
    assert output.record_size({"raw": b"x" * 65536}) == 65536
    assert output.record_size({"raw": "é" * 10}) == 20
    assert output.record_size({"id": "a"}) == len(b'{"id":"a"}')
    assert config.concurrency == 8


class Driven:
    """The output behind the real driver, with a memory buffer and a dead-letter queue."""

    def __init__(self, output: XRayOutput, config: XRayOutputConfig, tmp_path: Path) -> None:
        self.stats = ComponentStats("xray_out", "outputs", "xray")
        self.buffer = MemoryBuffer(max_events=10_000, max_bytes=10**8, when_full="block", on_drop=self.stats.drop)
        self.channel = Channel("xray_out")
        self.dlq = DeadLetterQueue(dlq_dir(tmp_path, "xray_out"), "xray_out", 10**7)
        self.runner = OutputRunner(
            "xray_out", self.channel, self.buffer, self.dlq, self.stats, logging.getLogger("t"), RepeatLimiter(60)
        )
        self.output, self.config, self.tmp_path = output, config, tmp_path
        self.stopping = asyncio.Event()

    def dead(self) -> list[dict[str, Any]]:
        self.dlq.close()
        return [e for f in dead_letter_files(self.tmp_path, "xray_out") for e in read_dead_letters(f)]


async def test_driver_sends_at_most_50_per_call_and_dead_letters_oversized(moto: MotoServer, tmp_path: Path) -> None:
    config = XRayOutputConfig.model_validate(
        {"type": "xray", "inputs": ["x"], "region": moto.region, "endpoint_url": moto.endpoint_url, "concurrency": 2}
    )
    output = XRayOutput(config, context(tmp_path))
    calls: list[int] = []
    original = output._put

    async def counting_put(ids: list[str | None], documents: list[str]) -> Any:
        calls.append(len(documents))
        return await original(ids, documents)

    output._put = counting_put  # type: ignore[method-assign]
    driven = Driven(output, config, tmp_path)
    await output.start()
    driven.runner.start_intake()
    task = asyncio.create_task(driven.runner.deliver(output, config, driven.stopping))
    records = [segment(n, trace=n % 5) for n in range(120)]
    exact, over = sized(500, 65536), sized(501, 65537)
    try:
        await driven.channel.send(Batch(TRACES, [*records[:70], exact, over]))
        await driven.channel.send(Batch(TRACES, records[70:]))
        await wait_for(lambda: driven.stats.sent_events == 121, timeout=10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await output.stop()
    assert max(calls) == 50 and sum(calls) == 121
    assert set(stored(moto, [r["trace_id"] for r in records])) >= {r["id"] for r in records}
    assert [e["reason"] for e in driven.dead()] == ["record_too_large"]


async def test_local_mode_needs_a_region_and_never_asks_instance_metadata(
    moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    output = XRayOutput(XRayOutputConfig(type="xray", inputs=["x"], local_mode=True), context(tmp_path))
    with pytest.raises(ValueError, match="local_mode needs a region"):
        await output.start()
    await output.stop()
    output = make(moto, tmp_path, local_mode=True)
    await output.start()
    try:
        providers = [p.METHOD for p in output.clients.session.get_component("credential_provider").providers]
        assert "iam-role" not in providers and "env" in providers
        assert (await output.send(Batch(TRACES, [segment(1)]))).outcome is Outcome.OK
    finally:
        await output.stop()


async def test_telemetry_records_are_published(moto: MotoServer, tmp_path: Path) -> None:
    output = make(
        moto,
        tmp_path,
        telemetry=True,
        telemetry_interval=1,
        resource_arn="arn:aws:ec2:eu-west-1:123456789012:instance/i-1",
    )
    sent: list[dict[str, Any]] = []
    await output.start()
    try:
        real = output._client.put_telemetry_records

        async def spy(**params: Any) -> Any:
            sent.append(params)
            return await real(**params)

        assert (await output.send(Batch(TRACES, [segment(1), segment(2)]))).outcome is Outcome.OK
        await output.telemetry.stop(None)  # stop the timer; publish by hand through the spy
        output.telemetry.cut()
        await output.telemetry.publish(spy)
    finally:
        await output.stop()
    (call,) = sent
    (record,) = call["TelemetryRecords"]
    assert record["SegmentsSentCount"] == 2 and record["SegmentsRejectedCount"] == 0
    assert call["Hostname"] == "node-1" and call["ResourceARN"].endswith("instance/i-1")
    assert output.telemetry.records_published == 1


async def test_telemetry_keeps_records_while_x_ray_is_unreachable(tmp_path: Path) -> None:
    output = XRayOutput(
        XRayOutputConfig(type="xray", inputs=["x"], region="eu-west-1", telemetry=True), context(tmp_path)
    )
    telemetry = output.telemetry
    telemetry.sent = 1

    async def failing(**params: Any) -> Any:
        raise ConnectionRefusedError("refused")

    for _ in range(40):
        telemetry.cut()
        await telemetry.publish(failing)
    assert len(telemetry._queue) == 30 and telemetry.records_published == 0
    telemetry.sent += 5
    published: list[int] = []

    async def working(**params: Any) -> Any:
        published.append(len(params["TelemetryRecords"]))

    telemetry.cut()
    await telemetry.publish(working)
    assert published == [10, 10, 10] and not telemetry._queue


def test_connection_error_kinds() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    def client_error(status: int) -> ClientError:
        return ClientError({"Error": {"Code": "X"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutTraceSegments")

    assert connection_error_kind(client_error(503)) == "HTTPCode5XXCount"
    assert connection_error_kind(client_error(400)) == "HTTPCode4XXCount"
    assert connection_error_kind(ReadTimeoutError(endpoint_url="x")) == "TimeoutCount"
    refused = EndpointConnectionError(endpoint_url="x", error=ConnectionRefusedError(111, "refused"))
    assert connection_error_kind(refused) == "ConnectionRefusedCount"
    assert connection_error_kind(RuntimeError("?")) == "OtherCount"


def test_config_rejects_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match="not an ARN"):
        XRayOutputConfig(type="xray", inputs=["x"], resource_arn="i-123")
    with pytest.raises(ValidationError, match="at least 1s"):
        XRayOutputConfig(type="xray", inputs=["x"], telemetry_interval="100ms")


async def test_raw_bytes_that_are_not_utf8_are_dead_lettered_alone(moto: MotoServer, tmp_path: Path) -> None:
    good = segment(1)
    broken = {**segment(2), "raw": segment(2)["raw"].replace(b"svc-2", b"svc-\xff")}
    output = make(moto, tmp_path)
    await output.start()
    try:
        result = await output.send(Batch(TRACES, [broken, good]))
    finally:
        await output.stop()
    assert result.per_record == [Outcome.DROP, Outcome.OK]
    assert result.record_reasons is not None and result.record_reasons[0].startswith("unsendable_document")
    assert set(stored(moto, [good["trace_id"]])) == {good["id"]}
