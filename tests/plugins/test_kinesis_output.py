"""`kinesis` output: partition keys, every PutRecords limit at its edge, partial failures, order per key.

The real output driver cuts the requests; the client is a fake of PutRecords that
enforces the current API reference (10 MiB requests since 2025: moto still
rejects above 5 MiB) and fails the records a plan names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from collector.config.errors import ConfigError
from collector.config.loader import parse_config
from collector.events import Metric
from collector.output_driver import effective_limits
from collector.send_result import Outcome
from collector.testing import component_context
from collector_plugins.outputs import kinesis_limits
from collector_plugins.outputs.kinesis import (
    HELD_BACK,
    KinesisConfig,
    KinesisOutput,
    PartitionKeys,
    fit_partition_key,
    hold_back_after_failures,
)
from tests.plugins.aws_stream_fakes import DriverHarness, FakeKinesis

MIB = 1024 * 1024
JSON_OVERHEAD = len(b'{"k":"","message":""}')


def keyed(key: str, size: int, fill: str = "x") -> dict[str, Any]:
    """A record whose JSON data plus UTF-8 partition key `key` (template `{k}`) is exactly `size` bytes."""
    room = size - len(key.encode()) - JSON_OVERHEAD - len(key.encode())
    return {"k": key, "message": fill * room}


def harness(tmp_path: Path, fake: FakeKinesis, **body: Any) -> DriverHarness:
    config = {"type": "kinesis", "stream": "events", "batch": {"timeout": 0}, **body}
    return DriverHarness(tmp_path, KinesisOutput, config, fake)


def latest_order(accepted: list[tuple[bytes, str]], key: str) -> list[bytes]:
    """A key's records in the order a consumer ends with: each record at its last occurrence in the stream."""
    data = [d for d, k in accepted if k == key]
    return [d for i, d in enumerate(data) if d not in data[i + 1 :]]


# -- partition keys ------------------------------------------------------------------------------


def test_partition_keys_fit_256_characters() -> None:
    assert fit_partition_key("a" * 256) == "a" * 256
    assert fit_partition_key("a" * 257) == "a" * 256
    assert fit_partition_key("é" * 300) == "é" * 256  # characters, not bytes
    # Characters outside the BMP count twice for a service that counts UTF-16 units.
    assert fit_partition_key("😀" * 128) == "😀" * 128
    assert fit_partition_key("😀" * 129) == "😀" * 128
    assert kinesis_limits.MAX_PARTITION_KEY_CHARS.value == 256


def test_template_keys_render_record_fields_and_host_facts() -> None:
    keys = PartitionKeys("{host}/{file}", {"host": "node-1"})
    assert keys.keys([{"file": "/var/log/a.log"}, {}]) == ["node-1//var/log/a.log", "node-1/unknown"]
    assert keys.keys([Metric("cpu", "gauge", 1.0)]) == ["node-1/unknown"]
    assert PartitionKeys("{name}", {}).keys([Metric("cpu", "gauge", 1.0)]) == ["cpu"]
    long = PartitionKeys("{file}", {})
    assert long.keys([{"file": "f" * 300}]) == ["f" * 256] and long.truncated == 1


def test_random_keys_are_distinct_128_bit_hex() -> None:
    keys = PartitionKeys(None, {}).keys([{}] * 1000)
    assert len(set(keys)) == 1000 and all(len(k) == 32 and int(k, 16) >= 0 for k in keys)


def test_hold_back_marks_later_records_of_a_failed_key() -> None:
    ok, retry, drop = Outcome.OK, Outcome.RETRY, Outcome.DROP
    keys = ["a", "b", "a", "a", "b", "c", "c"]
    outcomes = [ok, ok, retry, ok, ok, drop, ok]
    reasons = ["", "", "throttled", "", "", "bad", ""]
    assert hold_back_after_failures(keys, outcomes, reasons) == 1
    assert outcomes == [ok, ok, retry, retry, ok, drop, ok]  # earlier a, other keys, after a drop: untouched
    assert reasons[3] == HELD_BACK


# -- configuration -----------------------------------------------------------------------------------


def config_text(extra: str) -> str:
    return f"""
inputs:
  app: {{type: generator}}
outputs:
  events: {{type: kinesis, inputs: [app], stream: events, region: eu-west-1, {extra}}}
"""


@pytest.mark.parametrize("extra", ["batch: {max_events: 500, max_bytes: 10MiB}", "batch: {max_events: 1}"])
def test_batch_limits_at_or_below_the_api_limits_are_accepted(extra: str) -> None:
    parse_config(config_text(extra), "c.yaml", environ={})


@pytest.mark.parametrize(
    ("extra", "key", "limit"),
    [("batch: {max_events: 501}", "max_events", "500"), ("batch: {max_bytes: 10485761}", "max_bytes", "10485760")],
)
def test_batch_limits_above_the_api_limits_are_rejected_naming_the_source(extra: str, key: str, limit: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config_text(extra), "c.yaml", environ={})
    issue = err.value.issues[0]
    assert issue.path == ("outputs", "events", "batch", key) and limit in issue.message
    assert issue.hint is not None and kinesis_limits.PUT_RECORDS in issue.hint and "2026-11-26" in issue.hint


def base(**extra: Any) -> dict[str, Any]:
    return {"type": "kinesis", "inputs": ["x"], "stream": "events", **extra}


def test_the_driver_cuts_requests_at_the_api_limits_or_the_users_lower_ones() -> None:
    limits = effective_limits(KinesisOutput, KinesisConfig.model_validate(base()))
    assert (limits.max_events, limits.max_bytes, limits.max_record_bytes) == (500, 10 * MIB, 10 * MIB)
    assert limits.exact_sizes and limits.timeout == 1.0
    lowered = KinesisConfig.model_validate(base(batch={"max_events": 50, "max_bytes": "5MiB"}))
    limits = effective_limits(KinesisOutput, lowered)
    assert (limits.max_events, limits.max_bytes) == (50, 5 * MIB)


def test_max_record_size_is_at_most_10_mib() -> None:
    assert KinesisConfig.model_validate(base()).max_record_size == MIB
    assert KinesisConfig.model_validate(base(max_record_size="10MiB")).max_record_size == 10 * MIB
    with pytest.raises(ValidationError, match=r"10485760 bytes \(10MiB\).*API_PutRecordsRequestEntry.*2026-11-26"):
        KinesisConfig.model_validate(base(max_record_size=10 * MIB + 1))


@pytest.mark.parametrize(
    "stream", ["events", "a.b_c-d", "arn:aws:kinesis:eu-west-1:123456789012:stream/events", "x" * 128]
)
def test_stream_names_and_arns_are_accepted(stream: str) -> None:
    KinesisConfig.model_validate(base(stream=stream))


@pytest.mark.parametrize("stream", ["", "x" * 129, "has space", "arn:aws:kinesis:eu-west-1:1:stream/e"])
def test_bad_streams_are_rejected(stream: str) -> None:
    with pytest.raises(ValidationError):
        KinesisConfig.model_validate(base(stream=stream))


def test_bad_partition_key_templates_are_rejected() -> None:
    with pytest.raises(ValidationError, match="never closed"):
        KinesisConfig.model_validate(base(partition_key="{host"))


def test_ordered_keys_need_one_request_at_a_time() -> None:
    with pytest.raises(ValidationError, match="preserve_order: false"):
        KinesisConfig.model_validate(base(partition_key="{host}", concurrency=2))
    KinesisConfig.model_validate(base(partition_key="{host}", concurrency=2, preserve_order=False))
    KinesisConfig.model_validate(base(concurrency=4))  # random keys: nothing to order


def test_record_size_counts_data_and_utf8_partition_key(tmp_path: Path) -> None:
    output = KinesisOutput(KinesisConfig.model_validate(base(partition_key="{k}")), component_context("k", tmp_path))
    assert output.record_size(keyed("ké", 500)) == 500
    assert output.record_size({"k": "ké", "message": ""}) == len(b'{"k":"k\xc3\xa9","message":""}') + 3
    random_keys = KinesisOutput(KinesisConfig.model_validate(base()), component_context("k", tmp_path))
    assert random_keys.record_size({"message": "abc"}) == len(b'{"message":"abc"}') + 32


# -- limits at their edges, through the driver -------------------------------------------------------


async def test_500_records_fit_one_request_and_501_take_two(tmp_path: Path) -> None:
    fake = FakeKinesis()
    await harness(tmp_path / "a", fake).run([{"message": "m"} for _ in range(500)])
    assert [len(c) for c in fake.calls] == [500]
    fake = FakeKinesis()
    await harness(tmp_path / "b", fake).run([{"message": "m"} for _ in range(501)])
    assert [len(c) for c in fake.calls] == [500, 1]


async def test_10_mib_with_partition_keys_fit_one_request_and_one_byte_more_takes_two(tmp_path: Path) -> None:
    body = {"partition_key": "{k}", "max_record_size": "10MiB"}
    fake = FakeKinesis(max_record_size=10 * MIB)
    await harness(tmp_path / "a", fake, **body).run([keyed(f"ké{i}", 2 * MIB) for i in range(5)])
    assert [sum(len(d) + len(k.encode()) for d, k in c) for c in fake.calls] == [10 * MIB]
    fake = FakeKinesis(max_record_size=10 * MIB)
    records = [*(keyed(f"ké{i}", 2 * MIB) for i in range(4)), keyed("ké4", 2 * MIB + 1)]
    await harness(tmp_path / "b", fake, **body).run(records)
    assert [sum(len(d) + len(k.encode()) for d, k in c) for c in fake.calls] == [8 * MIB, 2 * MIB + 1]


async def test_a_record_at_the_streams_1_mib_is_sent_and_one_byte_more_is_dead_lettered(tmp_path: Path) -> None:
    fake = FakeKinesis()
    h = harness(tmp_path, fake, partition_key="{k}")
    at, over, small = keyed("ké", MIB, "a"), keyed("ké", MIB + 1, "b"), keyed("ké", 100, "c")
    await h.run([at, over, small])
    assert [len(d) + len(k.encode()) for call in fake.calls for d, k in call] == [MIB, 100]
    assert [(e["reason"].split(":")[0], e["record"]["message"][0]) for e in h.dead()] == [("record_too_large", "b")]
    assert h.output.counters()["records_too_large"] == 1 and h.stats.sent_events == 2


async def test_a_record_at_the_api_maximum_of_10_mib_is_sent_and_one_byte_more_is_dead_lettered(
    tmp_path: Path,
) -> None:
    fake = FakeKinesis(max_record_size=10 * MIB)
    h = harness(tmp_path, fake, partition_key="{k}", max_record_size="10MiB")
    await h.run([keyed("k", 10 * MIB, "a"), keyed("k", 10 * MIB + 1, "b")])
    assert [len(d) + len(k) for call in fake.calls for d, k in call] == [10 * MIB]
    assert [e["reason"] for e in h.dead()] == ["record_too_large"]  # cut by the driver, never sent


async def test_partition_keys_of_256_characters_pass_and_longer_ones_are_cut(tmp_path: Path) -> None:
    fake = FakeKinesis()
    h = harness(tmp_path, fake, partition_key="{k}")
    await h.run([{"k": "a" * 256, "message": "1"}, {"k": "b" * 257, "message": "2"}])
    assert [k for call in fake.calls for _, k in call] == ["a" * 256, "b" * 256]
    assert h.output.counters()["partition_keys_truncated"] == 1


# -- partial failures and order per key ---------------------------------------------------------------


async def test_records_2_and_5_of_8_fail_and_only_they_are_resent(tmp_path: Path) -> None:
    fake = FakeKinesis(
        plan=lambda call, i: "ProvisionedThroughputExceededException" if call == 0 and i in (1, 4) else None
    )
    h = harness(tmp_path, fake)  # random keys
    await h.run([{"message": f"e{n}"} for n in range(1, 9)])
    assert [len(c) for c in fake.calls] == [8, 2]
    assert [d for d, _ in fake.calls[1]] == [b'{"message":"e2"}', b'{"message":"e5"}']
    assert sorted(d for d, _ in fake.accepted) == sorted(f'{{"message":"e{n}"}}'.encode() for n in range(1, 9))
    assert h.stats.sent_events == 8 and h.dead() == []
    assert h.output.counters()["records_failed"] == 2 and h.output.counters()["records_held_back"] == 0


def ordered_records() -> list[dict[str, Any]]:
    # Key A: a1 a2 a3, key B: b1 b2, interleaved; a1 (position 0) is the one that fails.
    return [{"k": k, "message": m} for k, m in [("A", "a1"), ("B", "b1"), ("A", "a2"), ("A", "a3"), ("B", "b2")]]


async def test_order_per_key_holds_back_later_records_of_a_failed_key(tmp_path: Path) -> None:
    fake = FakeKinesis(plan=lambda call, i: "InternalFailure" if call == 0 and i == 0 else None)
    h = harness(tmp_path, fake, partition_key="{k}")
    await h.run(ordered_records())
    assert [d[-4:-2] for d, _ in fake.calls[1]] == [b"a1", b"a2", b"a3"]  # the failed one and the later of its key
    assert [d[-4:-2] for d, k in fake.accepted if k == "A"] == [b"a2", b"a3", b"a1", b"a2", b"a3"]
    assert [d[-4:-2] for d in latest_order(fake.accepted, "A")] == [b"a1", b"a2", b"a3"]
    assert [d[-4:-2] for d, k in fake.accepted if k == "B"] == [b"b1", b"b2"]  # never resent
    assert h.output.counters()["records_held_back"] == 2 and h.stats.sent_events == 5


async def test_without_preserve_order_only_the_failed_record_is_resent(tmp_path: Path) -> None:
    fake = FakeKinesis(plan=lambda call, i: "InternalFailure" if call == 0 and i == 0 else None)
    h = harness(tmp_path, fake, partition_key="{k}", preserve_order=False)
    await h.run(ordered_records())
    assert [len(c) for c in fake.calls] == [5, 1]
    assert [d[-4:-2] for d, k in fake.accepted if k == "A"] == [b"a2", b"a3", b"a1"]  # reordered, no duplicates


async def test_a_failed_request_keeps_the_oversized_record_dead_and_retries_the_rest(tmp_path: Path) -> None:
    class FailingFirst(FakeKinesis):
        async def put_records(self, Records: list[dict[str, Any]], **stream: str) -> dict[str, Any]:
            if not self.calls and not getattr(self, "failed", False):
                self.failed = True
                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "PutRecords"
                )
            return await super().put_records(Records, **stream)

    fake = FailingFirst()
    h = harness(tmp_path, fake)
    await h.run([{"message": "a"}, {"message": "x" * MIB}, {"message": "b"}])
    assert [[d for d, _ in c] for c in fake.calls] == [[b'{"message":"a"}', b'{"message":"b"}']]
    assert [e["reason"].split(":")[0] for e in h.dead()] == ["record_too_large"]
    assert h.stats.retries == 1 and h.stats.sent_events == 2
