"""The collector as a process: log lines -> `firehose` (S3 destination) and `kinesis`, through faults.

The moto server stands in for AWS; a fault proxy between the collector and moto
throttles and fails some calls. Credentials reach the collector only through the
standard chain (the environment). Everything read must arrive exactly as read:
every line in the S3 objects, every line from GetRecords, in order for the one
partition key, with a bounded number of calls.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from pathlib import Path

import pytest

from collector.registry import load_registry
from collector.testing import wait_for_sync
from tests.aws_faults import FaultProxy
from tests.e2e.conftest import Collector, child_env, cli
from tests.moto import MotoServer

BUCKET = "collector-lake"
FIREHOSE = "node-logs"
KINESIS = "node-events"
LINES = 3000


@pytest.fixture
def aws(moto: MotoServer) -> MotoServer:
    moto.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": moto.region})
    moto.client("firehose").create_delivery_stream(
        DeliveryStreamName=FIREHOSE,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{BUCKET}",
        },
    )
    moto.client("kinesis").create_stream(StreamName=KINESIS, ShardCount=1)
    return moto


def outputs(endpoint: str, source: str) -> str:
    retry = "retry: {initial_backoff: 50ms, max_backoff: 200ms}"
    return f"""\
outputs:
  lake:
    type: firehose
    inputs: [{source}]
    delivery_stream: {FIREHOSE}
    region: eu-west-1
    endpoint_url: {endpoint}
    batch: {{timeout: 200ms}}
    {retry}
  events:
    type: kinesis
    inputs: [{source}]
    stream: {KINESIS}
    region: eu-west-1
    endpoint_url: {endpoint}
    partition_key: "{{host}}"
    format: raw
    batch: {{timeout: 200ms}}
    {retry}
"""


def s3_messages(moto: MotoServer) -> list[str]:
    s3 = moto.client("s3")
    bodies = [
        s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
        for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    ]
    return [json.loads(line)["message"] for body in bodies for line in body.splitlines()]


def kinesis_messages(moto: MotoServer) -> list[str]:
    kinesis = moto.client("kinesis")
    shard = kinesis.list_shards(StreamName=KINESIS)["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName=KINESIS, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"], Limit=10_000)["Records"]
    return [r["Data"].decode() for r in records]


def inject_faults(proxy: FaultProxy) -> int:
    proxy.fail_next(2, "throttle", match="PutRecordBatch")
    proxy.fail_next(1, "5xx", match="PutRecordBatch")
    proxy.fail_next(1, "throttle", match="PutRecords")
    proxy.fail_next(2, "5xx", match="PutRecords")
    return 6


def check_delivery(aws: MotoServer, proxy: FaultProxy, expected: list[str], faults: int) -> None:
    assert Counter(s3_messages(aws)) == Counter(expected)  # every line, once
    assert kinesis_messages(aws) == expected  # one partition key: in order, once
    assert proxy.faults == faults
    # Bounded: the failed tries plus about one call per 500 lines (a few more where a batch timeout cut one).
    for operation in ("PutRecordBatch", "PutRecords"):
        assert LINES // 500 <= proxy.count(operation, faulted=False) <= LINES // 500 + 10, operation


@pytest.mark.slow
def test_stdin_lines_reach_s3_and_kinesis_through_throttling_and_5xx(tmp_path: Path, aws: MotoServer) -> None:
    collector = Collector(tmp_path)
    expected = [f"line {i} of the piped log" for i in range(LINES)]
    with FaultProxy(aws.endpoint_url) as proxy:
        faults = inject_faults(proxy)
        collector.write_config("inputs:\n  app: {type: stdin}\n" + outputs(proxy.url, "app"))
        out = cli("run", "-c", str(collector.config), input="\n".join(expected) + "\n", env=child_env())
        assert out.returncode == 0, out.stderr
        check_delivery(aws, proxy, expected, faults)
    assert "request failed; retrying" in out.stderr  # the retries were logged, not silent


@pytest.mark.slow
def test_tailed_files_reach_s3_and_kinesis_through_throttling_and_5xx(
    tmp_path: Path, aws: MotoServer, collector: Collector
) -> None:
    if ("inputs", "file") not in load_registry().plugins:
        pytest.skip("the `file` input is not installed yet")
    logs = tmp_path / "logs"
    logs.mkdir()
    expected = [f"line {i} of app.log" for i in range(LINES)]
    with FaultProxy(aws.endpoint_url) as proxy:
        faults = inject_faults(proxy)
        collector.write_config(
            f'inputs:\n  app: {{type: file, include: ["{logs}/*.log"], read_from: beginning}}\n'
            + outputs(proxy.url, "app")
        )
        collector.start()
        with (logs / "app.log").open("w") as f:
            for line in expected[: LINES // 2]:
                f.write(line + "\n")
        with (logs / "app.log").open("a") as f:  # appended while tailed
            for line in expected[LINES // 2 :]:
                f.write(line + "\n")
        wait_for_sync(lambda: len(kinesis_messages(aws)) >= LINES and len(s3_messages(aws)) >= LINES, timeout=30)
        collector.signal(signal.SIGTERM)
        assert collector.wait() == 0, collector.stderr()
        check_delivery(aws, proxy, expected, faults)
