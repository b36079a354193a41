"""`firehose` output against the moto server: Firehose with an S3 destination, through a fault proxy.

moto writes one S3 object per PutRecordBatch call, the records' data joined
with no delimiter: the objects show both what arrived and how it was cut into
calls. Credentials come from the environment (the standard chain); the output
is given no key of its own.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from collector_plugins.outputs.firehose.output import FirehoseOutput
from tests.integration.record_faults import RecordFaultProxy
from tests.moto import MotoServer
from tests.plugins.aws_stream_fakes import DriverHarness

# aiohttp warns about request bodies over 1 MiB (aiobotocore hands it bytes); harmless, and not ours to change.
pytestmark = pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")

BUCKET = "collector-lake"
STREAM = "node-logs"


@pytest.fixture
def lake(moto: MotoServer) -> MotoServer:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": moto.region})
    moto.client("firehose").create_delivery_stream(
        DeliveryStreamName=STREAM,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
            "Prefix": "logs/",
        },
    )
    return moto


@pytest.fixture
def proxy(lake: MotoServer) -> Any:
    with RecordFaultProxy(lake.endpoint_url) as p:
        yield p


def objects(moto: MotoServer) -> list[bytes]:
    s3 = moto.client("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="logs/").get("Contents", [])
    return [s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed]


def lines(moto: MotoServer) -> list[bytes]:
    return [line for body in objects(moto) for line in body.splitlines()]


def harness(tmp_path: Path, endpoint: str, **body: Any) -> DriverHarness:
    config = {
        "type": "firehose",
        "delivery_stream": STREAM,
        "endpoint_url": endpoint,
        "batch": {"timeout": 0},
        "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
        **body,
    }
    return DriverHarness(tmp_path, FirehoseOutput, config)


def events(n: int) -> list[dict[str, Any]]:
    return [{"timestamp": 1.0 + i, "message": f"line {i}", "file": "/var/log/app.log"} for i in range(n)]


async def test_every_event_lands_in_s3_as_one_json_line(tmp_path: Path, lake: MotoServer, proxy: Any) -> None:
    h = harness(tmp_path, proxy.url)
    await h.run(events(1200))
    got = lines(lake)
    assert Counter(got) == Counter(
        f'{{"timestamp":{1.0 + i},"message":"line {i}","file":"/var/log/app.log"}}'.encode() for i in range(1200)
    )
    assert [len(c) for c in proxy.calls["PutRecordBatch"]] == [500, 500, 200]  # 500 records per call at most
    assert len(objects(lake)) == 3
    # Signed with the environment's credentials: the standard chain, no key in the config.
    auth = [r.headers["authorization"] for r in proxy.requests if r.operation == "PutRecordBatch"]
    assert all(f"Credential={os.environ['AWS_ACCESS_KEY_ID']}/" in a for a in auth)


async def test_raw_packed_lines_arrive_in_few_records(tmp_path: Path, lake: MotoServer, proxy: Any) -> None:
    h = harness(tmp_path, proxy.url, format="raw", pack=True)
    await h.run(events(1000))
    assert sorted(lines(lake)) == sorted(f"line {i}".encode() for i in range(1000))  # S3 lists by key, not time
    assert sorted(len(body.splitlines()) for body in objects(lake)) == [500, 500]
    assert [len(c) for c in proxy.calls["PutRecordBatch"]] == [1, 1]  # 500 events packed per request
    assert h.output.counters()["records_sent"] == 2 and h.stats.sent_events == 1000


async def test_records_2_and_5_of_8_fail_and_only_they_are_resent(
    tmp_path: Path, lake: MotoServer, proxy: RecordFaultProxy
) -> None:
    proxy.fail_records(lambda call, i: "ServiceUnavailableException" if call == 0 and i in (1, 4) else None)
    h = harness(tmp_path, proxy.url, format="raw")
    await h.run([{"message": f"e{n}"} for n in range(1, 9)])
    assert proxy.records("PutRecordBatch", 1) == [b"e2\n", b"e5\n"]
    assert len(proxy.calls["PutRecordBatch"]) == 2
    assert sorted(lines(lake)) == [f"e{n}".encode() for n in range(1, 9)]  # each exactly once
    assert h.stats.retries == 1 and h.dead() == []


async def test_a_failed_packed_record_resends_only_its_events(
    tmp_path: Path, lake: MotoServer, proxy: RecordFaultProxy
) -> None:
    proxy.fail_records(lambda call, i: "InternalFailure" if call == 0 and i == 1 else None)
    h = harness(tmp_path, proxy.url, format="raw", pack=True)
    big = [{"message": f"{n}" * 400_000} for n in range(6)]  # two per 1,000 KiB record: [0 1] [2 3] [4 5]
    await h.run(big)
    assert [len(r) for r in proxy.records("PutRecordBatch", 0)] == [800_002] * 3
    assert proxy.records("PutRecordBatch", 1) == [b"2" * 400_000 + b"\n" + b"3" * 400_000 + b"\n"]
    assert sorted(lines(lake)) == [f"{n}".encode() * 400_000 for n in range(6)]


async def test_throttling_5xx_and_resets_are_retried_with_a_bounded_number_of_calls(
    tmp_path: Path, lake: MotoServer, proxy: RecordFaultProxy
) -> None:
    proxy.fail_next(2, "throttle", match="PutRecordBatch")
    proxy.fail_next(1, "5xx", match="PutRecordBatch")
    proxy.fail_next(1, "reset", match="PutRecordBatch")
    h = harness(tmp_path, proxy.url)
    await h.run(events(300))
    assert len(lines(lake)) == 300 and len(set(lines(lake))) == 300
    assert proxy.count("PutRecordBatch") == 5 and proxy.faults == 4  # one request, four failed tries, no storm
    assert h.stats.retries == 4 and h.stats.sent_events == 300


async def test_a_missing_stream_dead_letters_the_records(tmp_path: Path, lake: MotoServer) -> None:
    h = harness(tmp_path, lake.endpoint_url, delivery_stream="no-such-stream")
    await h.run(events(3))
    assert [e["reason"].split(":")[0] for e in h.dead()] == ["ResourceNotFoundException"] * 3
    assert objects(lake) == []
