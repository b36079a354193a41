from __future__ import annotations

import logging
from typing import Any

import pytest
from pydantic import ValidationError

from collector.api import ComponentContext
from collector.events import LOGS, METRICS, Batch, Metric
from collector.testing import wait_for
from collector_plugins.outputs.blackhole.output import Blackhole, BlackholeConfig


def make(ctx: ComponentContext, **options: Any) -> Blackhole:
    return Blackhole(BlackholeConfig(type="blackhole", inputs=["src"], **options), ctx)


async def test_counts_events_and_bytes(ctx: ComponentContext, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.plugin")
    sink = make(ctx)
    await sink.stop()  # safe without start
    await sink.start()
    await sink.write(Batch(LOGS, [{"message": "a"}] * 10, nbytes=100))
    await sink.write(Batch(METRICS, [Metric("m", "gauge", 1.0)] * 3, nbytes=30))
    await sink.stop()
    assert (sink.events, sink.bytes, sink.batches) == (13, 130, 2)
    assert caplog.records == [], "nothing is logged without print_interval"


async def test_print_interval_logs_throughput(ctx: ComponentContext, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.plugin")
    sink = make(ctx, print_interval="20ms")
    batch = Batch(LOGS, [{"message": "a"}] * 100, nbytes=1000)
    await sink.write(batch)
    assert caplog.records == [], "the first line comes after one interval"

    async def logged() -> bool:  # the line is due 20 ms after start, written by a write
        await sink.write(batch)
        return bool(caplog.records)

    await wait_for(logged, timeout=5, interval=0.001)
    record = caplog.records[0]
    assert record.getMessage() == "blackhole throughput"
    assert {"events", "bytes", "events_per_sec"} <= set(record.fields)  # type: ignore[attr-defined]
    count = len(caplog.records)
    await sink.write(batch)
    assert len(caplog.records) == count, "at most one line per interval"
    await sink.stop()
    assert caplog.records[-1].getMessage() == "blackhole totals"
    assert caplog.records[-1].fields["events"] > 0  # type: ignore[attr-defined]


def test_config() -> None:
    assert BlackholeConfig(type="blackhole", inputs=["a"], print_interval="1m").print_interval == 60.0
    with pytest.raises(ValidationError, match="print_interval"):
        BlackholeConfig(type="blackhole", inputs=["a"], print_interval=0)
    with pytest.raises(ValidationError):
        BlackholeConfig(type="blackhole", inputs=[])
