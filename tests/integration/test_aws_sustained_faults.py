"""Every AWS output under what fleets meet: an 8 s outage, then 40 % throttling on every operation.

The fault proxy in front of moto answers every request with a 503 for
OUTAGE seconds, and from then on throttles a seeded random SHARE of ALL
requests (CreateLogGroup and CreateLogStream included) with the service's own
throttling error. Each output runs behind the real driver with the production
retry settings (500 ms initial backoff, 20 s cap) and its default concurrency.
Each test proves, reading back from moto:

- all RECORDS arrive within DEADLINE seconds of the outage's end;
- each exactly once (the proxy answers faults itself, so a refused request
  was never seen by moto: any duplicate would be the driver's doing);
- the number of requests stays bounded (the bound and its reason are stated
  per test): no retry storm while the destination throttles.

Figures (time from the outage's end to the last record, requests) are printed
for the report: `pytest -s -k sustained`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collector.api import Output
from collector.buffer.disk import DiskBuffer
from collector.testing import wait_for
from tests.aws_faults import FaultProxy
from tests.moto import MotoServer
from tests.plugins.aws_stream_fakes import DriverHarness

pytestmark = pytest.mark.slow

OUTAGE = 8.0  # seconds of 503 for every request
SHARE = 0.4  # then this share of all requests is throttled, for the rest of the test
SEED = 20261206
RECORDS = 40_000
DEADLINE = 60.0  # every record delivered within this long after the outage ends
PRODUCTION_RETRY = {"initial_backoff": "500ms", "max_backoff": "20s"}  # the defaults, stated


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.endpoint_url) as p:
        yield p


@dataclass
class Figures:
    after_outage: float  # seconds from the outage's end until the last record was delivered
    requests: int  # every request the output made, faults included
    throttled: dict[str, int]  # throttling answers by operation
    retries: int


async def deliver_through_faults(
    tmp_path: Path,
    proxy: FaultProxy,
    output_cls: type[Output],
    body: dict[str, Any],
    records: list[Any],
    feed_batch: int = 1000,
    disk: bool = False,
) -> Figures:
    """Start the output behind the driver, start the outage and the throttling, feed `records`, wait for all."""
    h = DriverHarness(tmp_path, output_cls, {"retry": PRODUCTION_RETRY, "endpoint_url": proxy.url, **body})
    if disk:
        h.buffer = h.runner.buffer = DiskBuffer(
            tmp_path / "buffer",
            max_bytes=256 << 20,
            when_full="block",
            fsync="never",
            on_drop=h.stats.drop,
            log=h.runner.log,
        )
        await h.buffer.open()
    await h.output.start()
    proxy.clear()
    outage_ends = proxy.outage(OUTAGE)
    proxy.sustained(SHARE, seed=SEED)
    task = h.start()
    try:
        for start in range(0, len(records), feed_batch):
            await h.feed(records[start : start + feed_batch])
        await wait_for(h.settled, timeout=OUTAGE + DEADLINE + 5)
        done = time.monotonic()
    finally:
        h.stopping.set()
        await asyncio.wait_for(task, 10)
        if h.runner.intake_task is not None:
            h.runner.intake_task.cancel()
        await h.output.stop()
        if disk:
            await h.buffer.close()
    assert h.stats.dropped == {}, h.dead()[:3]
    assert h.stats.sent_events == len(records)
    figures = Figures(done - outage_ends, len(proxy.requests), proxy.throttled_by_operation(), h.stats.retries)
    print(f"\n{output_cls.type_name}: {figures}")  # the report's figures (pytest -s)
    assert figures.after_outage <= DEADLINE
    assert sum(figures.throttled.values()) > 0  # the throttling did happen
    return figures


# -- cloudwatch_logs ---------------------------------------------------------------------------------


def read_log_stream(moto: MotoServer, group: str, stream: str) -> list[str]:
    logs = moto.client("logs")
    out: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        page = logs.get_log_events(**kwargs)
        out += [e["message"] for e in page["events"]]
        if not page["events"] or page["nextForwardToken"] == token:
            return out
        token = page["nextForwardToken"]


async def test_cloudwatch_logs_sustained_throttling(tmp_path: Path, proxy: FaultProxy, moto: MotoServer) -> None:
    from collector_plugins.outputs.cloudwatch_logs import CloudWatchLogsOutput

    now = time.time() - 600
    records = [{"timestamp": now + i / 1000, "message": f"line {i:05d}", "app": "ab"[i % 2]} for i in range(RECORDS)]
    body = {"type": "cloudwatch_logs", "log_group": "/fleet/app", "log_stream": "{app}"}
    figures = await deliver_through_faults(tmp_path, proxy, CloudWatchLogsOutput, body, records, disk=True)
    for app in "ab":
        expected = [r["message"] for r in records if r["app"] == app]
        assert read_log_stream(moto, "/fleet/app", app) == expected  # all, in order, once
    # The creation calls were throttled too, and each was retried on its own: at most one
    # CreateLogGroup that succeeded plus its throttled attempts, and the same per stream.
    assert proxy.count("CreateLogGroup", faulted=False) <= 2  # a second one answers AlreadyExists at most
    # Bound: 20,000 lines per stream fill 2-3 PutLogEvents each (10,000 events / 1 MB), ~6 requests, plus
    # the 3 creation calls: ~9 that must succeed. At 40 % throttling each needs 1/0.6 = 1.7 tries on
    # average; the outage costs one failed try per backoff step (~6 in 8 s). 60 is > 3x that, and far
    # below what a retry storm (or restarting the creation chain on every throttle) would make.
    assert figures.requests <= 60


# -- kinesis -----------------------------------------------------------------------------------------

KINESIS_STREAM = "fleet-stream"


def read_kinesis(moto: MotoServer) -> list[bytes]:
    kinesis = moto.client("kinesis")
    out: list[bytes] = []
    for shard in kinesis.list_shards(StreamName=KINESIS_STREAM)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=KINESIS_STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            out.extend(r["Data"] for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


async def test_kinesis_sustained_throttling(tmp_path: Path, proxy: FaultProxy, moto: MotoServer) -> None:
    from collector_plugins.outputs.kinesis import KinesisOutput

    kinesis = moto.client("kinesis")
    kinesis.create_stream(StreamName=KINESIS_STREAM, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=KINESIS_STREAM, WaiterConfig={"Delay": 0.1})
    records = [{"message": f"event {i:05d}", "host": f"node-{i % 4}"} for i in range(RECORDS)]
    body = {"type": "kinesis", "stream": KINESIS_STREAM, "format": "raw", "batch": {"timeout": 0}}
    figures = await deliver_through_faults(tmp_path, proxy, KinesisOutput, body, records, feed_batch=500)
    data = read_kinesis(moto)
    assert len(data) == RECORDS
    assert sorted(data) == sorted(r["message"].encode() for r in records)  # each once
    # Bound: 40,000 records in requests of at most 500 (the API limit) = 80 that must succeed; at 40 %
    # throttling 80 / 0.6 = 134 tries on average; the outage adds ~6. 250 leaves room for the seeded draws
    # and for the requests cut small by feeding, and is far from a storm.
    assert figures.requests <= 250
