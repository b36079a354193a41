"""The `otlp` output into a second, independent OTLP/HTTP receiver: PyPI `oteltap` (a native receiver library)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import oteltap

from collector.events import LOGS, METRICS, TRACES, Batch, Metric
from collector.send_result import Outcome
from collector.testing import component_context, free_port
from collector_plugins.outputs.otlp.output import OtlpConfig, OtlpOutput
from tests.plugins.test_otlp_output import log, span


async def test_all_three_signals_reach_oteltap(tmp_path: Path) -> None:
    # oteltap 1.0.0 does not inflate gzip bodies (it answers 400 "Failed to decode request body"): uncompressed.
    compression = "none"
    port = free_port()
    receiver = oteltap.OtelTapHttpProtobufReceiver(oteltap.OtelTapHttpProtobufReceiverSettings(http_port=port))
    await receiver.start()
    body = {"type": "otlp", "inputs": ["x"], "endpoint": f"http://127.0.0.1:{port}", "compression": compression}
    out = OtlpOutput(OtlpConfig.model_validate(body), component_context("out", tmp_path))
    await out.start()
    try:
        # oteltap hands each message to the waiters registered when it arrives: register first, then send.
        waiting = [
            asyncio.create_task(receiver.await_trace(lambda s: s.name == "op-41", timeout=10)),
            asyncio.create_task(receiver.await_log(lambda r: r.body.string_value == "line 42", timeout=10)),
            asyncio.create_task(receiver.await_metric(lambda m: m.name == "tap.requests", timeout=10)),
        ]
        await asyncio.sleep(0)  # not a wait: one loop turn so the three waiters are registered
        assert (await out.send(Batch(TRACES, [span(41)]))).outcome is Outcome.OK
        assert (await out.send(Batch(LOGS, [log(42)]))).outcome is Outcome.OK
        metric = Metric("tap.requests", "counter", 3.0, {"route": "/x"}, time.time(), interval=10.0)
        assert (await out.send(Batch(METRICS, [metric]))).outcome is Outcome.OK
        got_span, got_log, got_metric = await asyncio.gather(*waiting)
    finally:
        await out.stop()
        await receiver.stop()
    assert got_span.span_id == bytes.fromhex(f"{42:016x}")
    assert {kv.key for kv in got_log.attributes} == {"level", "n"}
    assert got_metric.sum.data_points[0].as_double == 3.0 and got_metric.sum.is_monotonic
