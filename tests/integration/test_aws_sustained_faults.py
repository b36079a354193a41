"""Every AWS output under what fleets meet: an 8 s outage, then 40 % throttling on every operation.

The fault proxy in front of moto answers every request with a 503 for
OUTAGE seconds, and from then on throttles a seeded random SHARE of ALL
requests (CreateLogGroup and CreateLogStream included) with the service's own
throttling error. Each output runs behind the real driver with its default
concurrency and the default initial backoff (see RETRY for the cap).
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
# The default initial backoff; a 5 s cap instead of the default 20 s. With 20 s the first try after the
# outage may come up to 20 s after its end (full jitter over the last step): still within DEADLINE, but
# past the time a test may take. Throttled retries are paced by the send rate limit, not by this cap.
RETRY = {"initial_backoff": "500ms", "max_backoff": "5s"}


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
    h = DriverHarness(tmp_path, output_cls, {"retry": RETRY, "endpoint_url": proxy.url, **body})
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
    # 8 shards: moto's PutRecords slows down as a shard grows (14 s for 80 calls on 2 shards, 9 s on 8).
    kinesis.create_stream(StreamName=KINESIS_STREAM, ShardCount=8)
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


# -- firehose ----------------------------------------------------------------------------------------

LAKE = "fleet-lake"


def create_bucket(moto: MotoServer) -> None:
    moto.client("s3").create_bucket(Bucket=LAKE, CreateBucketConfiguration={"LocationConstraint": moto.region})


def bucket_lines(moto: MotoServer, prefix: str) -> list[bytes]:
    s3 = moto.client("s3")
    out: list[bytes] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=LAKE, Prefix=prefix):
        for obj in page.get("Contents", []):
            out += s3.get_object(Bucket=LAKE, Key=obj["Key"])["Body"].read().splitlines()
    return out


async def test_firehose_sustained_throttling(tmp_path: Path, proxy: FaultProxy, moto: MotoServer) -> None:
    from collector_plugins.outputs.firehose import FirehoseOutput

    create_bucket(moto)
    moto.client("firehose").create_delivery_stream(
        DeliveryStreamName="fleet",
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{LAKE}",
            "Prefix": "firehose/",
        },
    )
    records = [{"message": f"event {i:05d}"} for i in range(RECORDS)]
    body = {"type": "firehose", "delivery_stream": "fleet", "format": "raw", "pack": True, "batch": {"timeout": 0}}
    figures = await deliver_through_faults(tmp_path, proxy, FirehoseOutput, body, records, feed_batch=500)
    assert sorted(bucket_lines(moto, "firehose/")) == sorted(r["message"].encode() for r in records)  # each once
    # Bound: requests hold at most 500 events (the API's record count, which the driver applies to events
    # even when they are packed): 80 must succeed, 80 / 0.6 = 134 tries on average at 40 % throttling,
    # plus ~6 in the outage. 250 leaves room for the seeded draws; a storm would be thousands.
    assert figures.requests <= 250


# -- s3 ----------------------------------------------------------------------------------------------


async def test_s3_sustained_throttling(tmp_path: Path, proxy: FaultProxy, moto: MotoServer) -> None:
    from collector_plugins.outputs.s3 import S3Output

    create_bucket(moto)
    now = time.time()
    records = [{"timestamp": now, "message": f"event {i:05d}", "host": "node-1"} for i in range(RECORDS)]
    body = {
        "type": "s3",
        "bucket": LAKE,
        "prefix": "s3/",
        "compression": "none",
        "batch": {"timeout": "1s", "max_events": 5000},  # a few objects, each a request of its own
    }
    figures = await deliver_through_faults(tmp_path, proxy, S3Output, body, records)
    lines = bucket_lines(moto, "s3/")
    assert len(lines) == RECORDS
    assert sorted(orjson_loads(line)["message"] for line in lines) == sorted(r["message"] for r in records)
    # Bound: 8 objects of 5,000 records (the batch limit set above) must be written; at 40 % throttling
    # (S3 SlowDown) 8 / 0.6 = 14 tries on average, plus ~6 per object in flight during the outage. 60 is
    # ample for the seeded draws and far from a storm.
    assert figures.requests <= 60


def orjson_loads(line: bytes) -> Any:
    import orjson

    return orjson.loads(line)


# -- cloudwatch_metrics ------------------------------------------------------------------------------


async def test_cloudwatch_metrics_sustained_throttling(tmp_path: Path, proxy: FaultProxy, moto: MotoServer) -> None:
    import datetime

    from collector.events import Metric
    from collector_plugins.outputs.cloudwatch_metrics import CloudWatchMetricsOutput

    now = time.time()
    records = [Metric(f"m{i % 4}", "gauge", float(i % 10), {"host": "node-1"}, now) for i in range(RECORDS)]
    body = {"type": "cloudwatch_metrics", "namespace": "Fleet", "batch": {"timeout": 0}}
    figures = await deliver_through_faults(tmp_path, proxy, CloudWatchMetricsOutput, body, records)
    cloudwatch = moto.client("cloudwatch")
    at = datetime.datetime.now(datetime.UTC)
    for name in ("m0", "m1", "m2", "m3"):
        (point,) = cloudwatch.get_metric_statistics(
            Namespace="Fleet",
            MetricName=name,
            Dimensions=[{"Name": "host", "Value": "node-1"}],
            StartTime=at - datetime.timedelta(minutes=10),
            EndTime=at + datetime.timedelta(minutes=1),
            Period=3600,
            Statistics=["Sum", "SampleCount"],
        )["Datapoints"]
        mine = [r.value for r in records if r.name == name]
        assert (point["SampleCount"], point["Sum"]) == (len(mine), sum(mine))  # each datum once
    # Bound: 40,000 datums in requests of at most 1,000 (the API limit): 40 must succeed, 40 / 0.6 = 67 tries
    # on average at 40 % throttling, plus ~6 in the outage. 150 leaves room for the seeded draws.
    assert figures.requests <= 150


# -- xray --------------------------------------------------------------------------------------------


async def test_xray_sustained_throttling(tmp_path: Path, proxy: FaultProxy, moto: MotoServer) -> None:
    import orjson

    from collector_plugins.outputs.xray import XRayOutput

    now = time.time()
    records = []
    for i in range(RECORDS):
        trace_id = f"1-{int(now):08x}-{i % 100:024x}"  # 100 traces of 400 segments: few BatchGetTraces calls
        doc = {"name": "svc", "id": f"{i:016x}", "trace_id": trace_id, "start_time": now - 1, "end_time": now}
        records.append({"raw": orjson.dumps(doc), "trace_id": trace_id, "id": doc["id"]})
    body = {"type": "xray", "local_mode": True}
    figures = await deliver_through_faults(tmp_path, proxy, XRayOutput, body, records)
    client = moto.client("xray")
    ids = sorted({r["trace_id"] for r in records})
    stored: list[str] = []
    for start in range(0, len(ids), 5):  # BatchGetTraces takes 5 trace ids per call
        for trace in client.batch_get_traces(TraceIds=ids[start : start + 5])["Traces"]:
            stored += [s["Id"] for s in trace["Segments"]]
    assert sorted(stored) == sorted(r["id"] for r in records)  # each once
    # Bound: 40,000 documents in calls of at most 50 (the daemon's batch): 800 must succeed, 800 / 0.6 =
    # 1,334 tries on average at 40 % throttling, plus ~6 per call in flight (8) during the outage.
    # 1,600 leaves room for the seeded draws; a storm would be many times that.
    assert figures.requests <= 1600
