"""`kinesis` output against the moto server: what GetRecords returns, through a fault proxy.

moto enforces 500 records per request and 1 MiB per record (data plus partition
key), the stream default; its request limit is still the pre-2025 5 MiB, so the
10 MiB request edge is held by the unit tests.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from collector_plugins.outputs.kinesis.output import KinesisOutput
from tests.integration.record_faults import RecordFaultProxy
from tests.moto import MotoServer
from tests.plugins.aws_stream_fakes import DriverHarness

# aiohttp warns about request bodies over 1 MiB (aiobotocore hands it bytes); harmless, and not ours to change.
pytestmark = pytest.mark.filterwarnings("ignore:Sending a large body directly:ResourceWarning")

STREAM = "node-events"
MIB = 1024 * 1024


@pytest.fixture
def stream(moto: MotoServer) -> MotoServer:
    kinesis = moto.client("kinesis")
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=STREAM, WaiterConfig={"Delay": 0.1})
    return moto


@pytest.fixture
def proxy(stream: MotoServer) -> Any:
    with RecordFaultProxy(stream.endpoint_url) as p:
        yield p


def read_stream(moto: MotoServer) -> list[tuple[bytes, str]]:
    """Every record of every shard as (data, partition key), each shard in its order."""
    kinesis = moto.client("kinesis")
    out: list[tuple[bytes, str]] = []
    for shard in kinesis.list_shards(StreamName=STREAM)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=STREAM, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            out.extend((r["Data"], r["PartitionKey"]) for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


def harness(tmp_path: Path, endpoint: str, **body: Any) -> DriverHarness:
    config = {
        "type": "kinesis",
        "stream": STREAM,
        "endpoint_url": endpoint,
        "batch": {"timeout": 0},
        "retry": {"initial_backoff": 0.01, "max_backoff": 0.05},
        **body,
    }
    return DriverHarness(tmp_path, KinesisOutput, config)


async def test_get_records_returns_every_event_in_order_per_key(
    tmp_path: Path, stream: MotoServer, proxy: RecordFaultProxy
) -> None:
    h = harness(tmp_path, proxy.url, partition_key="{host}/{file}")
    records = [{"message": f"{f}-{i}", "file": f} for i in range(600) for f in ("a.log", "b.log")]
    await h.run(records)
    got = read_stream(stream)
    assert sorted(got) == sorted(
        (f'{{"message":"{r["message"]}","file":"{r["file"]}"}}'.encode(), f"testhost/{r['file']}") for r in records
    )
    for f in ("a.log", "b.log"):
        assert [d for d, k in got if k == f"testhost/{f}"] == [
            f'{{"message":"{f}-{i}","file":"{f}"}}'.encode() for i in range(600)
        ]
    assert [len(c) for c in proxy.calls["PutRecords"]] == [500, 500, 200]
    auth = [r.headers["authorization"] for r in proxy.requests if r.operation == "PutRecords"]
    assert all(f"Credential={os.environ['AWS_ACCESS_KEY_ID']}/" in a for a in auth)  # the standard chain


async def test_501_records_take_two_requests_that_moto_accepts(tmp_path: Path, stream: MotoServer) -> None:
    h = harness(tmp_path, stream.endpoint_url, format="raw")
    await h.run([{"message": str(i)} for i in range(501)])
    assert sorted(int(d) for d, _ in read_stream(stream)) == list(range(501))
    assert h.output.counters()["requests"] == 2 and h.dead() == []


async def test_a_record_of_1_mib_with_its_key_arrives_and_one_byte_more_is_dead_lettered(
    tmp_path: Path, stream: MotoServer
) -> None:
    h = harness(tmp_path, stream.endpoint_url, format="raw", partition_key="{k}")
    at = {"k": "key", "message": "a" * (MIB - 3)}
    over = {"k": "key", "message": "b" * (MIB - 2)}
    await h.run([at, over, {"k": "key", "message": "c"}])
    assert [(len(d), d[:1]) for d, _ in read_stream(stream)] == [(MIB - 3, b"a"), (1, b"c")]
    assert [e["reason"].split(":")[0] for e in h.dead()] == ["record_too_large"]


async def test_records_2_and_5_of_8_fail_and_only_they_are_resent(
    tmp_path: Path, stream: MotoServer, proxy: RecordFaultProxy
) -> None:
    proxy.fail_records(lambda call, i: "ProvisionedThroughputExceededException" if call == 0 and i in (1, 4) else None)
    h = harness(tmp_path, proxy.url, format="raw")  # random keys
    await h.run([{"message": f"e{n}"} for n in range(1, 9)])
    assert proxy.records("PutRecords", 1) == [b"e2", b"e5"] and len(proxy.calls["PutRecords"]) == 2
    assert sorted(d for d, _ in read_stream(stream)) == [f"e{n}".encode() for n in range(1, 9)]  # once each


async def test_a_failed_record_holds_back_the_later_records_of_its_key(
    tmp_path: Path, stream: MotoServer, proxy: RecordFaultProxy
) -> None:
    proxy.fail_records(lambda call, i: "InternalFailure" if call == 0 and i == 0 else None)
    h = harness(tmp_path, proxy.url, format="raw", partition_key="{k}")
    await h.run([{"k": k, "message": m} for k, m in [("A", "a1"), ("B", "b1"), ("A", "a2"), ("A", "a3")]])
    assert proxy.records("PutRecords", 1) == [b"a1", b"a2", b"a3"]
    got = read_stream(stream)
    a = [d for d, k in got if k == "A"]
    assert a == [b"a2", b"a3", b"a1", b"a2", b"a3"]  # ends with the key's records in order
    assert [d for d, k in got if k == "B"] == [b"b1"]


async def test_throttling_5xx_and_resets_are_retried_with_a_bounded_number_of_calls(
    tmp_path: Path, stream: MotoServer, proxy: RecordFaultProxy
) -> None:
    proxy.fail_next(2, "throttle", match="PutRecords")
    proxy.fail_next(1, "5xx", match="PutRecords")
    proxy.fail_next(1, "reset", match="PutRecords")
    h = harness(tmp_path, proxy.url, format="raw")
    await h.run([{"message": str(i)} for i in range(300)])
    assert sorted(int(d) for d, _ in read_stream(stream)) == list(range(300))
    assert proxy.count("PutRecords") == 5 and proxy.faults == 4
    assert h.stats.retries == 4 and h.stats.sent_events == 300


async def test_a_missing_stream_dead_letters_the_records(tmp_path: Path, stream: MotoServer) -> None:
    h = harness(tmp_path, stream.endpoint_url, stream="no-such-stream")
    await h.run([{"message": "x"}])
    assert [e["reason"].split(":")[0] for e in h.dead()] == ["ResourceNotFoundException"]
