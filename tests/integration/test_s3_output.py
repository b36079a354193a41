"""`s3` output against the moto server, directly and through a fault proxy.

Credentials come from the environment only (the standard chain; dummy values
set in tests/conftest.py): the output is given no key of its own.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from collector.api import ComponentContext, HostFacts
from collector.channel import Channel
from collector.dlq import DeadLetterQueue, dlq_dir
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner
from collector.send_result import Outcome
from collector.stats import ComponentStats
from collector_plugins.outputs.s3 import S3Config, S3Output
from tests.aws_faults import FaultProxy
from tests.moto import MotoServer
from tests.unit.buffer.helpers import make_buffer

# aiohttp warns about request bodies over 1 MiB (aiobotocore hands it bytes); harmless, and not ours to change.
pytestmark = pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")

BUCKET = "collector-archive"
T0 = 1764151200.0  # 2025-11-26T10:00:00Z
HOUR10 = "logs/year=2025/month=11/day=26/hour=10/host=node-1/"
HOUR11 = "logs/year=2025/month=11/day=26/hour=11/host=node-1/"


@pytest.fixture
def bucket(moto: MotoServer) -> MotoServer:
    moto.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": moto.region})
    return moto


@pytest.fixture
def proxy(bucket: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(bucket.endpoint_url) as p:
        yield p


def ctx(tmp_path: Path) -> ComponentContext:
    return ComponentContext("archive", logging.getLogger("test.s3"), tmp_path, HostFacts("node-1"))


def s3_config(endpoint: str, **body: Any) -> S3Config:
    base = {"type": "s3", "inputs": ["app"], "bucket": BUCKET, "region": "eu-west-1", "endpoint_url": endpoint}
    return S3Config.model_validate({**base, **body})


def log_records(n: int, start: float = T0, step: float = 1.0, size: int = 60) -> list[dict[str, Any]]:
    return [
        {"timestamp": start + i * step, "message": f"{i:08d} " + "y" * size, "host": "node-1", "file": "/var/log/a"}
        for i in range(n)
    ]


def batch(records: list[dict[str, Any]], origin: str | None) -> Batch:
    b = Batch(LOGS, records, nbytes=sum(len(r["message"]) for r in records))
    b.origin = origin
    return b


def stored(moto: MotoServer) -> dict[str, list[dict[str, Any]]]:
    """Every object of the bucket: key -> its records (gzip JSON lines)."""
    s3 = moto.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = [orjson.loads(line) for line in gzip.decompress(body).splitlines()]
    return out


async def test_objects_land_under_partitioned_keys_and_hold_every_record(bucket: MotoServer, tmp_path: Path) -> None:
    output = S3Output(s3_config(bucket.endpoint_url), ctx(tmp_path))
    await output.start()
    records = log_records(200, start=T0 + 3500, step=1.0)  # 10:58:20 .. 11:01:39
    try:
        assert (await output.send(batch(records, "19ab0c0ffee-1-0"))).outcome is Outcome.OK
    finally:
        await output.stop()
    objects = stored(bucket)
    assert sorted(objects) == [f"{HOUR10}19ab0c0ffee-1-0.json.gz", f"{HOUR11}19ab0c0ffee-1-0.json.gz"]
    assert objects[f"{HOUR10}19ab0c0ffee-1-0.json.gz"] == records[:100]
    assert objects[f"{HOUR11}19ab0c0ffee-1-0.json.gz"] == records[100:]
    head = bucket.client("s3").head_object(Bucket=BUCKET, Key=f"{HOUR10}19ab0c0ffee-1-0.json.gz")
    assert head["ContentType"] == "application/gzip" and head["Metadata"] == {"records": "100"}
    counters = output.counters()
    assert counters["objects"] == 2 and counters["multipart_uploads"] == 0
    assert counters["bytes_encoded"] > counters["bytes_stored"] > 0


async def test_sending_the_same_request_again_overwrites_its_objects(bucket: MotoServer, tmp_path: Path) -> None:
    output = S3Output(s3_config(bucket.endpoint_url), ctx(tmp_path))
    records = log_records(50, start=T0 + 3590)
    try:
        for _ in range(2):
            assert (await output.send(batch(records, "19ab0c0ffee-2-40"))).outcome is Outcome.OK
    finally:
        await output.stop()
    objects = stored(bucket)
    assert len(objects) == 2 and sum(len(v) for v in objects.values()) == 50


async def test_large_objects_go_up_in_parts_and_read_back_whole(bucket: MotoServer, tmp_path: Path) -> None:
    config = s3_config(bucket.endpoint_url, multipart_threshold="5MiB", part_size="5MiB")
    output = S3Output(config, ctx(tmp_path))
    import random

    rng = random.Random(7)
    # Random hex compresses to about half: ~12.6 MB of JSON lines give a ~6.6 MB object, two parts (5 MiB + rest).
    records = [
        {"timestamp": T0 + i / 1000, "message": rng.randbytes(3000).hex(), "host": "node-1"} for i in range(2100)
    ]
    try:
        assert (await output.send(batch(records, "19ab0c0ffee-3-0"))).outcome is Outcome.OK
    finally:
        await output.stop()
    counters = output.counters()
    assert counters["multipart_uploads"] == 1 and counters["bytes_stored"] > 5 * 1024 * 1024
    assert counters["parts"] == 2
    assert stored(bucket) == {f"{HOUR10}19ab0c0ffee-3-0.json.gz": records}
    assert bucket.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


async def test_a_failed_part_aborts_the_upload_and_the_retry_stores_the_object(
    proxy: FaultProxy, bucket: MotoServer, tmp_path: Path
) -> None:
    config = s3_config(proxy.url, multipart_threshold="5MiB", part_size="5MiB", compression="none")
    output = S3Output(config, ctx(tmp_path))
    records = log_records(80_000, start=T0, step=0.01, size=80)  # ~11 MiB of plain JSON lines: 3 parts
    proxy.fail_next(1, "5xx", match=lambda r: r.method == "PUT" and "partNumber=2" in r.path)
    try:
        first = await output.send(batch(records, "19ab0c0ffee-4-0"))
        assert first.outcome is Outcome.RETRY and "503" in first.reason
        assert output.counters()["aborted_uploads"] == 1
        assert bucket.client("s3").list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
        assert (await output.send(batch(records, "19ab0c0ffee-4-0"))).outcome is Outcome.OK
    finally:
        await output.stop()
    s3 = bucket.client("s3")
    body = s3.get_object(Bucket=BUCKET, Key=f"{HOUR10}19ab0c0ffee-4-0.json")["Body"].read()
    assert [orjson.loads(line) for line in body.splitlines()] == records
    assert proxy.count(lambda r: r.method == "DELETE" and "uploadId=" in r.path) == 1  # AbortMultipartUpload


async def test_slowdown_is_retried_without_resending_what_is_stored(
    proxy: FaultProxy, bucket: MotoServer, tmp_path: Path
) -> None:
    output = S3Output(s3_config(proxy.url), ctx(tmp_path))
    records = log_records(20, start=T0 + 3590)  # two objects: hour 10 and hour 11
    proxy.fail_next(2, "slowdown", match=lambda r: r.method == "PUT" and "hour=11" in unquote(r.path))
    try:
        for _ in range(2):
            result = await output.send(batch(records, "19ab0c0ffee-5-0"))
            assert result.outcome is Outcome.RETRY and result.reason.startswith("SlowDown")
        assert (await output.send(batch(records, "19ab0c0ffee-5-0"))).outcome is Outcome.OK
    finally:
        await output.stop()
    puts = proxy.count(lambda r: r.method == "PUT")
    assert puts == 4  # hour 10 once, hour 11 three times (two SlowDown answers, then stored)
    assert sum(len(v) for v in stored(bucket).values()) == 20


async def test_a_missing_bucket_dead_letters_the_records(moto: MotoServer, tmp_path: Path) -> None:
    output = S3Output(s3_config(moto.endpoint_url, bucket="no-such-bucket"), ctx(tmp_path))
    try:
        result = await output.send(batch(log_records(3), "19ab0c0ffee-6-0"))
    finally:
        await output.stop()
    assert result.outcome is Outcome.DROP and "NoSuchBucket" in result.reason


async def test_only_the_records_of_an_unstorable_key_are_dead_lettered(bucket: MotoServer, tmp_path: Path) -> None:
    output = S3Output(s3_config(bucket.endpoint_url, prefix="apps/{app}/"), ctx(tmp_path))
    records = [{"timestamp": T0, "message": "a", "app": "web"}, {"timestamp": T0, "message": "b", "app": "x" * 1100}]
    try:
        result = await output.send(batch(records, "19ab0c0ffee-7-0"))
    finally:
        await output.stop()
    assert result.per_record == [Outcome.OK, Outcome.DROP]
    assert result.record_reasons is not None and result.record_reasons[1].startswith("key_too_long")
    assert list(stored(bucket)) == ["apps/web/19ab0c0ffee-7-0.json.gz"]


async def test_hostile_field_values_cannot_leave_their_partition(bucket: MotoServer, tmp_path: Path) -> None:
    output = S3Output(s3_config(bucket.endpoint_url, prefix="apps/app={app}/dt={%Y}/"), ctx(tmp_path))
    apps = ["web", "../../etc", "x/dt=1999", "tab\tnl\nnul\x00", "..", "a%2Fb"]
    records = [{"timestamp": T0, "message": str(i), "app": app} for i, app in enumerate(apps)]
    try:
        assert (await output.send(batch(records, "19ab0c0ffee-8-0"))).outcome is Outcome.OK
    finally:
        await output.stop()
    objects = stored(bucket)
    assert sorted(objects) == sorted(
        f"apps/app={escaped}/dt=2025/19ab0c0ffee-8-0.json.gz"
        for escaped in ("web", "..%2F..%2Fetc", "x%2Fdt%3D1999", "tab%09nl%0Anul%00", "%2E%2E", "a%252Fb")
    )
    for key, held in objects.items():
        (record,) = held
        assert unquote(key.split("/")[1].removeprefix("app=")) == record["app"]  # decodes back to the value


async def test_a_replay_after_a_crash_overwrites_instead_of_duplicating(bucket: MotoServer, tmp_path: Path) -> None:
    """Objects stored, the process dies before the buffer's ledger records it: the replay writes the same keys."""
    config = s3_config(bucket.endpoint_url, batch={"max_bytes": "40KiB", "timeout": "50ms"})
    buffer_dir = tmp_path / "buffer"

    async def run_once(push: bool) -> tuple[Any, int]:
        buffer = make_buffer(buffer_dir, fsync_interval=60.0)  # no ledger write before the "crash"
        await buffer.open()
        if push:
            for i in range(12):
                await buffer.push(batch(log_records(100, start=T0 + 3000 + i * 100, size=60), None))
        buffer.close_intake()
        stats = ComponentStats("archive", "outputs", "s3")
        dlq = DeadLetterQueue(dlq_dir(tmp_path, "archive"), "archive", 10**6)
        runner = OutputRunner(
            "archive", Channel("archive"), buffer, dlq, stats, logging.getLogger("t"), RepeatLimiter(60)
        )
        output = S3Output(config, ctx(tmp_path))
        await output.start()
        try:
            await asyncio.wait_for(runner.deliver(output, config, asyncio.Event()), 30)
        finally:
            await output.stop()
        return buffer, stats.sent_events

    buffer, sent = await run_once(push=True)
    assert sent == 1200
    first = stored(bucket)
    await buffer._abort()  # the crash: acknowledged, but the committed position never reached the disk
    buffer, sent = await run_once(push=False)
    assert sent == 1200  # everything was delivered again ...
    await buffer.close()
    after = stored(bucket)
    assert sorted(after) == sorted(first) and len(first) >= 4  # ... under the same keys: overwritten
    assert sum(len(v) for v in after.values()) == 1200  # no duplicates
    assert all(k.startswith(("logs/year=2025/month=11/day=26/hour=10/", HOUR11)) for k in after)
