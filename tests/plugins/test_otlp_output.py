"""The `otlp` output against a test OTLP receiver (tests/plugins/otlp_receiver.py), over HTTP and gRPC."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from collector.buffer.memory import MemoryBuffer
from collector.channel import Channel
from collector.dlq import DeadLetterQueue, dead_letter_files, dlq_dir, read_dead_letters
from collector.events import LOGS, METRICS, TRACES, Batch, Metric
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner
from collector.send_result import Outcome, PermanentError, RetryableError
from collector.stats import ComponentStats
from collector.testing import component_context, wait_for
from collector_plugins.outputs.otlp.output import OtlpConfig, OtlpOutput
from tests.plugins.otlp_receiver import OK, OtlpReceiver, Reply

PROTOCOLS = ["http", "grpc"]


def span(i: int, **extra: Any) -> dict[str, Any]:
    now = time.time_ns()
    record = {
        "format": "otlp",
        "trace_id": f"{i + 1:032x}",
        "span_id": f"{i + 1:016x}",
        "parent_span_id": "",
        "name": f"op-{i}",
        "kind": "server",
        "start_time_unix_nano": now - 1000,
        "end_time_unix_nano": now,
        "attributes": {"i": i, "http.route": "/x"},
        "resource": {"service.name": "shop"},
        "scope": {"name": "lib", "version": "1.0", "attributes": {}},
    }
    record.update(extra)
    return record


def log(i: int) -> dict[str, Any]:
    return {"timestamp": time.time(), "message": f"line {i}", "level": "info", "n": i}


def output(tmp_path: Path, endpoint: str, protocol: str, **extra: Any) -> OtlpOutput:
    body = {"type": "otlp", "inputs": ["x"], "protocol": protocol, "endpoint": endpoint, **extra}
    return OtlpOutput(OtlpConfig.model_validate(body), component_context("out", tmp_path))


async def receiver_for(protocol: str, plan: Any = None) -> tuple[OtlpReceiver, str]:
    receiver = OtlpReceiver(plan)
    endpoint = await (receiver.start_http() if protocol == "http" else receiver.start_grpc())
    return receiver, endpoint


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_all_three_signals_arrive_exactly(tmp_path: Path, protocol: str) -> None:
    receiver, endpoint = await receiver_for(protocol)
    out = output(tmp_path, endpoint, protocol, headers={"x-api-key": "k1"})
    await out.start()
    try:
        assert (await out.send(Batch(TRACES, [span(0), span(1)]))).outcome is Outcome.OK
        assert (await out.send(Batch(LOGS, [log(0)]))).outcome is Outcome.OK
        counter = Metric("requests", "counter", 3.0, {"route": "/x"}, time.time(), interval=10.0)
        assert (await out.send(Batch(METRICS, [counter]))).outcome is Outcome.OK
    finally:
        await out.stop()
        await receiver.stop()
    spans = receiver.accepted("traces")
    assert [s.name for s in spans] == ["op-0", "op-1"]
    assert spans[0].trace_id == bytes.fromhex(f"{1:032x}") and spans[0].kind == 2
    assert receiver.requests["traces"][0].resource_spans[0].resource.attributes[0].value.string_value == "shop"
    (record,) = receiver.accepted("logs")
    assert record.body.string_value == "line 0"
    assert {kv.key for kv in record.attributes} == {"level", "n"}
    (metric,) = receiver.accepted("metrics")
    assert metric.sum.is_monotonic and metric.sum.aggregation_temporality == 1  # delta
    assert metric.sum.data_points[0].as_double == 3.0
    assert all(h.get("x-api-key") == "k1" for h in receiver.headers)
    assert out.counters()["items_sent"] == 4


async def test_http_gzip_body_and_content_type(tmp_path: Path) -> None:
    receiver, endpoint = await receiver_for("http")
    out = output(tmp_path, endpoint, "http")
    await out.start()
    try:
        assert (await out.send(Batch(LOGS, [log(i) for i in range(50)]))).outcome is Outcome.OK
    finally:
        await out.stop()
        await receiver.stop()
    assert receiver.headers[0]["Content-Encoding"] == "gzip"
    assert int(receiver.headers[0]["Content-Length"]) < len(receiver.bodies[0]) / 3  # sent compressed
    assert len(receiver.accepted("logs")) == 50


async def test_http_per_signal_endpoint_override(tmp_path: Path) -> None:
    receiver, endpoint = await receiver_for("http")
    out = output(tmp_path, "http://127.0.0.1:1", "http", logs_endpoint=f"{endpoint}/v1/logs", compression="none")
    await out.start()
    try:
        assert (await out.send(Batch(LOGS, [log(0)]))).outcome is Outcome.OK
    finally:
        await out.stop()
        await receiver.stop()
    assert len(receiver.accepted("logs")) == 1
    assert "Content-Encoding" not in receiver.headers[0]


@pytest.mark.parametrize(
    ("reply", "outcome", "throttled", "retry_after"),
    [
        (Reply(http_status=429, headers={"Retry-After": "7"}), Outcome.RETRY, True, 7.0),
        (Reply(http_status=503), Outcome.RETRY, False, None),
        (Reply(http_status=502), Outcome.RETRY, False, None),
        (Reply(http_status=504, headers={"Retry-After": "2"}), Outcome.RETRY, False, 2.0),
        (Reply(http_status=400, message="bad span"), Outcome.DROP, False, None),
        (Reply(http_status=401), Outcome.DROP, False, None),
        (Reply(http_status=500), Outcome.DROP, False, None),
        (Reply(http_status=413), Outcome.DROP, False, None),
    ],
)
async def test_http_failures_per_spec(
    tmp_path: Path, reply: Reply, outcome: Outcome, throttled: bool, retry_after: float | None
) -> None:
    receiver, endpoint = await receiver_for("http", lambda s, c, r: reply)
    out = output(tmp_path, endpoint, "http")
    await out.start()
    try:
        result = await out.send(Batch(TRACES, [span(0)]))
    finally:
        await out.stop()
        await receiver.stop()
    assert (result.outcome, result.throttled, result.retry_after) == (outcome, throttled, retry_after)
    assert f"HTTP {reply.http_status}" in result.reason
    if reply.message:
        assert reply.message in result.reason


C = grpc.StatusCode


@pytest.mark.parametrize(
    ("reply", "outcome", "throttled", "retry_after"),
    [
        (Reply(grpc_code=C.UNAVAILABLE), Outcome.RETRY, False, None),
        (Reply(grpc_code=C.UNAVAILABLE, retry_delay=1.5), Outcome.RETRY, False, 1.5),
        (Reply(grpc_code=C.CANCELLED), Outcome.RETRY, False, None),
        (Reply(grpc_code=C.DEADLINE_EXCEEDED), Outcome.RETRY, False, None),
        (Reply(grpc_code=C.ABORTED), Outcome.RETRY, False, None),
        (Reply(grpc_code=C.OUT_OF_RANGE), Outcome.RETRY, False, None),
        (Reply(grpc_code=C.DATA_LOSS), Outcome.RETRY, False, None),
        (Reply(grpc_code=C.RESOURCE_EXHAUSTED, retry_delay=3.25), Outcome.RETRY, True, 3.25),
        (Reply(grpc_code=C.RESOURCE_EXHAUSTED), Outcome.DROP, False, None),
        (Reply(grpc_code=C.INVALID_ARGUMENT, message="bad"), Outcome.DROP, False, None),
        (Reply(grpc_code=C.UNAUTHENTICATED), Outcome.DROP, False, None),
        (Reply(grpc_code=C.PERMISSION_DENIED), Outcome.DROP, False, None),
        (Reply(grpc_code=C.INTERNAL), Outcome.DROP, False, None),
        (Reply(grpc_code=C.UNIMPLEMENTED), Outcome.DROP, False, None),
    ],
)
async def test_grpc_failures_per_spec(
    tmp_path: Path, reply: Reply, outcome: Outcome, throttled: bool, retry_after: float | None
) -> None:
    receiver, endpoint = await receiver_for("grpc", lambda s, c, r: reply)
    out = output(tmp_path, endpoint, "grpc")
    await out.start()
    try:
        result = await out.send(Batch(LOGS, [log(0)]))
    finally:
        await out.stop()
        await receiver.stop()
    assert (result.outcome, result.throttled, result.retry_after) == (outcome, throttled, retry_after)
    assert reply.grpc_code.name in result.reason


async def test_connection_refused_is_retryable(tmp_path: Path) -> None:
    from collector.testing import free_port

    for protocol in PROTOCOLS:
        out = output(tmp_path, f"http://127.0.0.1:{free_port()}", protocol, timeout="2s")
        await out.start()
        try:
            result = await out.send(Batch(LOGS, [log(0)]))
        finally:
            await out.stop()
        assert result.outcome is Outcome.RETRY, protocol


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_partial_success_counts_rejected_as_lost_and_is_not_retried(tmp_path: Path, protocol: str) -> None:
    receiver, endpoint = await receiver_for(protocol, lambda s, c, r: Reply(rejected=2, message="2 spans too old"))
    losses: list[tuple[str, int]] = []
    out = output(tmp_path, endpoint, protocol)
    out.ctx.loss = lambda reason, n: losses.append((reason, n))
    await out.start()
    try:
        result = await out.send(Batch(TRACES, [span(i) for i in range(5)]))
    finally:
        await out.stop()
        await receiver.stop()
    assert result.outcome is Outcome.OK and result.per_record is None
    assert receiver.calls == 1
    assert losses == [("rejected_by_server", 2)]
    assert out.counters()["items_rejected"] == 2 and out.counters()["items_sent"] == 3


async def test_records_the_encoding_cannot_carry_are_dropped_alone(tmp_path: Path) -> None:
    receiver, endpoint = await receiver_for("http")
    out = output(tmp_path, endpoint, "http")
    await out.start()
    try:
        result = await out.send(Batch(TRACES, [span(0), {"message": "not a span"}, span(2, span_id="zz")]))
    finally:
        await out.stop()
        await receiver.stop()
    assert result.per_record == [Outcome.OK, Outcome.DROP, Outcome.DROP]
    assert result.record_reasons is not None and "hexadecimal" in result.record_reasons[2]
    assert [s.name for s in receiver.accepted("traces")] == ["op-0"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_batch_over_the_byte_limit_is_split_within_it(tmp_path: Path, protocol: str) -> None:
    receiver, endpoint = await receiver_for(protocol)
    out = output(tmp_path, endpoint, protocol, batch={"max_bytes": "64KiB"})
    big = "x" * 5000
    records = [{"timestamp": time.time(), "message": big, "n": i} for i in range(40)]  # ~200 KB encoded
    await out.start()
    try:
        result = await out.send(Batch(LOGS, records))
    finally:
        await out.stop()
        await receiver.stop()
    assert result.outcome is Outcome.OK and result.per_record is None
    assert len(receiver.requests["logs"]) >= 4
    assert all(r.ByteSize() <= 64 * 1024 for r in receiver.requests["logs"])
    got = [next(kv.value.int_value for kv in r.attributes if kv.key == "n") for r in receiver.accepted("logs")]
    assert got == list(range(40))


async def test_split_batch_part_failing_leaves_later_parts_unsent(tmp_path: Path) -> None:
    receiver, endpoint = await receiver_for("http", lambda s, c, r: OK if c == 0 else Reply(http_status=503))
    out = output(tmp_path, endpoint, "http", batch={"max_bytes": "32KiB"})
    records = [{"timestamp": time.time(), "message": "y" * 5000, "n": i} for i in range(20)]
    await out.start()
    try:
        result = await out.send(Batch(LOGS, records))
    finally:
        await out.stop()
        await receiver.stop()
    assert result.per_record is not None
    sent = len(receiver.accepted("logs"))
    assert 0 < sent < 20
    assert list(result.per_record) == [Outcome.OK] * sent + [Outcome.RETRY] * (20 - sent)
    assert receiver.calls == 2  # the parts after the failed one were not sent


async def test_a_record_alone_over_the_limit_is_dead_lettered(tmp_path: Path) -> None:
    receiver, endpoint = await receiver_for("http")
    out = output(tmp_path, endpoint, "http", batch={"max_bytes": "64KiB"})
    await out.start()
    try:
        result = await out.send(Batch(LOGS, [log(0), {"timestamp": time.time(), "message": "z" * 100_000}]))
    finally:
        await out.stop()
        await receiver.stop()
    assert result.per_record == [Outcome.OK, Outcome.DROP]
    assert result.record_reasons is not None and result.record_reasons[1].startswith("record_too_large")


async def test_write_raises_per_outcome(tmp_path: Path) -> None:
    receiver, endpoint = await receiver_for("http", lambda s, c, r: Reply(http_status=503 if c == 0 else 400))
    out = output(tmp_path, endpoint, "http")
    await out.start()
    try:
        with pytest.raises(RetryableError):
            await out.write(Batch(LOGS, [log(0)]))
        with pytest.raises(PermanentError):
            await out.write(Batch(LOGS, [log(0)]))
    finally:
        await out.stop()
        await receiver.stop()


# -- through the real driver, with sustained random faults ------------------------------------------------


class Harness:
    def __init__(self, tmp_path: Path, body: dict[str, Any]) -> None:
        self.stats = ComponentStats("out", "outputs", "otlp")
        self.buffer = MemoryBuffer(max_events=100_000, max_bytes=10**9, when_full="block", on_drop=self.stats.drop)
        self.channel = Channel("out")
        self.dlq = DeadLetterQueue(dlq_dir(tmp_path, "out"), "out", 10**9)
        self.runner = OutputRunner(
            "out", self.channel, self.buffer, self.dlq, self.stats, logging.getLogger("t"), RepeatLimiter(60)
        )
        full = {"type": "otlp", "inputs": ["x"], "retry": {"initial_backoff": 0.001, "max_backoff": 0.005}, **body}
        self.config = OtlpConfig.model_validate(full)
        self.output = OtlpOutput(self.config, component_context("out", tmp_path))
        self.tmp_path = tmp_path
        self.fed = 0

    async def run(self, kind: str, batches: list[list[Any]], timeout: float = 20) -> None:
        await self.output.start()
        self.runner.start_intake()
        task = asyncio.create_task(self.runner.deliver(self.output, self.config, asyncio.Event()))
        try:
            for records in batches:
                self.fed += len(records)
                await self.channel.send(Batch(kind, records, nbytes=len(records) * 100))  # type: ignore[arg-type]
            await wait_for(
                lambda: self.stats.received_events == self.fed and self.buffer.pending_events == 0, timeout=timeout
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self.output.stop()

    def dead(self) -> list[dict[str, Any]]:
        self.dlq.close()
        return [e for f in dead_letter_files(self.tmp_path, "out") for e in read_dead_letters(f)]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_sustained_random_faults_lose_nothing(tmp_path: Path, protocol: str) -> None:
    """Every call may fail (seeded): retryable ones are retried, 400s dead-lettered; nothing is lost."""
    rng = random.Random(17)
    poisoned: set[int] = set()

    def plan(signal: str, call: int, request: Any) -> Reply:
        names = [int(s.name.split("-")[1]) for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
        if any(n % 97 == 0 for n in names):  # requests holding a "poisoned" span are refused for good
            poisoned.update(names)
            return Reply(http_status=400, grpc_code=C.INVALID_ARGUMENT, message="poison")
        roll = rng.random()
        if roll < 0.15:
            return Reply(http_status=503, grpc_code=C.UNAVAILABLE)
        if roll < 0.25:
            return Reply(http_status=429, grpc_code=C.RESOURCE_EXHAUSTED, headers={"Retry-After": "0"}, retry_delay=0)
        if roll < 0.30:
            return Reply(http_status=504, grpc_code=C.DEADLINE_EXCEEDED)
        return OK

    receiver, endpoint = await receiver_for(protocol, plan)
    harness = Harness(
        tmp_path, {"protocol": protocol, "endpoint": endpoint, "batch": {"max_events": 50, "timeout": "10ms"}}
    )
    try:
        await harness.run(TRACES, [[span(i) for i in range(b * 100, b * 100 + 100)] for b in range(10)])
    finally:
        await receiver.stop()
    delivered = [int(s.name.split("-")[1]) for s in receiver.accepted("traces")]
    dead = [int(e["record"]["name"].split("-")[1]) for e in harness.dead()]
    assert sorted(set(delivered) | set(dead)) == list(range(1000))  # nothing lost
    assert len(delivered) == len(set(delivered))  # an accepted request is never sent again
    assert not set(delivered) & set(dead)
    assert set(dead) == poisoned and any(n % 97 == 0 for n in dead)
    assert harness.stats.retries > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_tls_with_a_custom_ca(tmp_path: Path, protocol: str) -> None:
    import ssl

    from tests.plugins.receiver_support import self_signed_cert

    cert, key = self_signed_cert(tmp_path)
    receiver = OtlpReceiver()
    if protocol == "http":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        endpoint = await receiver.start_http(ssl_context=context)
    else:
        credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
        endpoint = await receiver.start_grpc(credentials)
    assert endpoint.startswith("https://")
    trusting = output(tmp_path, endpoint, protocol, ca_file=str(cert))
    untrusting = output(tmp_path, endpoint, protocol, timeout="3s")
    try:
        await trusting.start()
        assert (await trusting.send(Batch(LOGS, [log(0)]))).outcome is Outcome.OK
        await untrusting.start()
        refused = await untrusting.send(Batch(LOGS, [log(1)]))
    finally:
        await trusting.stop()
        await untrusting.stop()
        await receiver.stop()
    assert refused.outcome is not Outcome.OK
    assert [r.body.string_value for r in receiver.accepted("logs")] == ["line 0"]
