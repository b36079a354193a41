"""`firehose` output: encoding, packing, every PutRecordBatch limit at its edge, partial failures.

The real output driver cuts the requests; the client is a fake of PutRecordBatch
that enforces the API reference's limits (moto enforces none of them) and fails
the records a plan names (moto never answers a partial failure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pydantic import ValidationError

from collector.config.errors import ConfigError
from collector.config.loader import parse_config
from collector.events import Batch, Metric
from collector.output_driver import effective_limits
from collector.send_result import Outcome, RetryableError
from collector.testing import component_context
from collector_plugins.outputs import firehose_limits
from collector_plugins.outputs.aws_records import blob_encoder, entry_outcomes, pack_spans
from collector_plugins.outputs.firehose import FirehoseConfig, FirehoseOutput
from tests.plugins.aws_stream_fakes import DriverHarness, FakeClients, FakeFirehose

JSON_OVERHEAD = len(b'{"message":""}\n')


def event(size: int, fill: str = "x") -> dict[str, Any]:
    """A record whose JSON line (newline included) is exactly `size` bytes."""
    return {"message": fill * (size - JSON_OVERHEAD)}


def harness(tmp_path: Path, fake: FakeFirehose, **body: Any) -> DriverHarness:
    config = {"type": "firehose", "delivery_stream": "lake", "batch": {"timeout": 0}, **body}
    return DriverHarness(tmp_path, FirehoseOutput, config, fake)


# -- encoding and packing -----------------------------------------------------------------------


def test_json_blobs_are_one_document_per_record_with_newline() -> None:
    encode = blob_encoder("json", newline=True)
    blobs = encode([{"message": "a"}, {"message": b"raw \xff"}, Metric("m", "gauge", 1.5, {"k": "v"}, 2.0)])
    assert blobs[0] == b'{"message":"a"}\n'
    assert blobs[1] == b'{"message":"raw \xef\xbf\xbd"}\n'  # bytes decoded as UTF-8, invalid sequences replaced
    assert blobs[2] == b'{"name":"m","type":"gauge","value":1.5,"tags":{"k":"v"},"timestamp":2.0}\n'
    assert len(event(100)["message"]) == 85 and len(encode([event(100)])[0]) == 100


def test_an_unserialisable_record_does_not_fail_the_others() -> None:
    encode = blob_encoder("json", newline=False)
    blobs = encode([{"message": "ok"}, {1: object()}])
    assert blobs[0] == b'{"message":"ok"}'
    assert blobs[1].startswith(b'{"1":"<object object') and not blobs[1].endswith(b"\n")


def test_raw_blobs_are_the_message_only() -> None:
    encode = blob_encoder("raw", newline=True)
    assert encode([{"message": "é"}, {"message": b"\x00b"}, {"level": "x"}]) == [
        "é\n".encode(),
        b"\x00b\n",
        b'{"level":"x"}\n',
    ]
    assert blob_encoder("raw", newline=False)([{"message": "a"}]) == [b"a"]


@pytest.mark.parametrize(
    ("sizes", "spans"),
    [
        ([600, 424], [(0, 2)]),  # exactly at the limit: one record
        ([600, 425], [(0, 1), (1, 2)]),  # one byte over: two
        ([1024, 1, 1], [(0, 1), (1, 3)]),
        ([2000, 5], [(0, 1), (1, 2)]),  # larger than the limit alone: kept alone
        ([], []),
    ],
)
def test_pack_spans_edges(sizes: list[int], spans: list[tuple[int, int]]) -> None:
    assert pack_spans(sizes, 1024) == spans


def test_per_record_error_codes() -> None:
    outcomes, reasons = entry_outcomes(
        [
            {"RecordId": "1"},
            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "slow down"},
            {"ErrorCode": "InternalFailure"},
            {"ErrorCode": "KMS.ThrottlingException"},
            {"ErrorCode": "KMS.AccessDeniedException", "ErrorMessage": "no grant"},
        ]
    )
    assert outcomes == [Outcome.OK, Outcome.RETRY, Outcome.RETRY, Outcome.RETRY, Outcome.DROP]
    assert reasons[1] == "ServiceUnavailableException: slow down" and reasons[4].startswith("KMS.AccessDenied")


# -- configuration: limits may be lowered, never raised ------------------------------------------


def config_text(batch: str) -> str:
    return f"""
inputs:
  app: {{type: generator}}
outputs:
  lake: {{type: firehose, inputs: [app], delivery_stream: lake, region: eu-west-1, batch: {batch}}}
"""


@pytest.mark.parametrize("batch", ["{max_events: 500, max_bytes: 4000000}", "{max_events: 1, max_bytes: 1KiB}"])
def test_batch_limits_at_or_below_the_api_limits_are_accepted(batch: str) -> None:
    parse_config(config_text(batch), "c.yaml", environ={})


@pytest.mark.parametrize(
    ("batch", "key", "limit"),
    [("{max_events: 501}", "max_events", "500"), ("{max_bytes: 4000001}", "max_bytes", "4000000")],
)
def test_batch_limits_above_the_api_limits_are_rejected_naming_the_source(batch: str, key: str, limit: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config_text(batch), "c.yaml", environ={})
    issue = err.value.issues[0]
    assert issue.path == ("outputs", "lake", "batch", key)
    assert limit in issue.message
    assert issue.hint is not None and firehose_limits.PUT_RECORD_BATCH in issue.hint and "2026-11-26" in issue.hint


def test_every_limit_names_its_source_and_date() -> None:
    for limit in (firehose_limits.MAX_RECORDS, firehose_limits.MAX_REQUEST_BYTES, firehose_limits.MAX_RECORD_BYTES):
        assert limit.source.startswith("https://docs.aws.amazon.com/firehose/") and limit.checked == "2026-11-26"
    assert FirehoseOutput.limits == firehose_limits.LIMITS


def test_the_driver_cuts_requests_at_the_api_limits_or_the_users_lower_ones() -> None:
    body = {"type": "firehose", "inputs": ["x"], "delivery_stream": "d"}
    limits = effective_limits(FirehoseOutput, FirehoseConfig.model_validate(body))
    assert (limits.max_events, limits.max_bytes, limits.max_record_bytes) == (500, 4_000_000, 1_024_000)
    assert limits.exact_sizes and limits.timeout == 1.0
    lowered = FirehoseConfig.model_validate({**body, "batch": {"max_events": 100, "max_bytes": "1MiB", "timeout": 0}})
    limits = effective_limits(FirehoseOutput, lowered)
    assert (limits.max_events, limits.max_bytes, limits.timeout) == (100, 1024 * 1024, 0)


@pytest.mark.parametrize("name", ["", "a" * 65, "has space", "a/b"])
def test_bad_delivery_stream_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError):
        FirehoseConfig.model_validate({"type": "firehose", "inputs": ["x"], "delivery_stream": name})


def test_record_size_is_the_blob_firehose_counts(tmp_path: Path) -> None:
    config = FirehoseConfig.model_validate({"type": "firehose", "inputs": ["x"], "delivery_stream": "d"})
    output = FirehoseOutput(config, component_context("f", tmp_path))
    assert output.record_size(event(1234)) == 1234
    raw = config.model_copy(update={"format": "raw", "append_newline": False})
    assert FirehoseOutput(raw, component_context("f", tmp_path)).record_size({"message": "é" * 10}) == 20


# -- limits at their edges, through the driver ---------------------------------------------------


async def test_500_records_fit_one_call_and_501_take_two(tmp_path: Path) -> None:
    fake = FakeFirehose()
    h = harness(tmp_path / "a", fake)
    await h.run([event(20) for _ in range(500)])
    assert [len(c) for c in fake.calls] == [500]
    fake = FakeFirehose()
    h = harness(tmp_path / "b", fake)
    await h.run([event(20) for _ in range(501)])
    assert [len(c) for c in fake.calls] == [500, 1]


async def test_4_mb_fit_one_call_and_one_byte_more_takes_two(tmp_path: Path) -> None:
    fake = FakeFirehose()
    h = harness(tmp_path / "a", fake)
    await h.run([event(1_000_000) for _ in range(4)])
    assert [sum(map(len, c)) for c in fake.calls] == [4_000_000]
    fake = FakeFirehose()
    h = harness(tmp_path / "b", fake)
    await h.run([*(event(1_000_000) for _ in range(3)), event(1_000_001)])
    assert [sum(map(len, c)) for c in fake.calls] == [3_000_000, 1_000_001]


async def test_a_record_of_1000_kib_is_sent_and_one_byte_more_is_dead_lettered(tmp_path: Path) -> None:
    fake = FakeFirehose()
    h = harness(tmp_path, fake)
    at, over = event(1_024_000, "a"), event(1_024_001, "b")
    await h.run([at, over, event(30, "c")])
    sent = [blob for call in fake.calls for blob in call]
    assert [len(b) for b in sent] == [1_024_000, 30]
    dead = h.dead()
    assert [(e["reason"], len(e["record"]["message"])) for e in dead] == [("record_too_large", len(over["message"]))]
    assert h.stats.sent_events == 2 and h.stats.dropped == {"dead_lettered": 1}


async def test_packing_fills_records_up_to_1000_kib_exactly(tmp_path: Path) -> None:
    fake = FakeFirehose()
    h = harness(tmp_path / "a", fake, pack=True)
    await h.run([event(600_000, "a"), event(424_000, "b")])
    assert [len(blob) for blob in fake.calls[0]] == [1_024_000]
    fake = FakeFirehose()
    h = harness(tmp_path / "b", fake, pack=True)
    await h.run([event(600_000, "a"), event(424_001, "b")])
    assert [len(blob) for blob in fake.calls[0]] == [600_000, 424_001]


async def test_packing_turns_many_small_events_into_one_record(tmp_path: Path) -> None:
    fake = FakeFirehose()
    h = harness(tmp_path, fake, pack=True)
    events = [{"message": f"line {i}"} for i in range(500)]
    await h.run(events)
    assert len(fake.calls) == 1 and len(fake.calls[0]) == 1
    assert fake.calls[0][0] == b"".join(f'{{"message":"line {i}"}}\n'.encode() for i in range(500))
    assert h.output.counters()["records_sent"] == 1 and h.stats.sent_events == 500


# -- partial failures: only the failed records are sent again -----------------------------------


async def test_records_2_and_5_of_8_fail_and_only_they_are_resent(tmp_path: Path) -> None:
    fake = FakeFirehose(plan=lambda call, i: "ServiceUnavailableException" if call == 0 and i in (1, 4) else None)
    h = harness(tmp_path, fake)
    events = [{"message": f"e{n}"} for n in range(1, 9)]
    await h.run(events)
    assert [len(c) for c in fake.calls] == [8, 2]
    assert fake.calls[1] == [b'{"message":"e2"}\n', b'{"message":"e5"}\n']
    assert sorted(fake.accepted) == sorted(f'{{"message":"e{n}"}}\n'.encode() for n in range(1, 9))  # once each
    assert h.stats.sent_events == 8 and h.stats.retries == 1 and h.dead() == []
    assert h.output.counters() == {"requests": 2, "records_sent": 8, "records_failed": 2}


async def test_a_failed_packed_record_resends_only_its_own_events(tmp_path: Path) -> None:
    # 300,000-byte events pack three to a record: records [e0 e1 e2] [e3 e4 e5] [e6 e7]; the second fails.
    fake = FakeFirehose(plan=lambda call, i: "InternalFailure" if call == 0 and i == 1 else None)
    h = harness(tmp_path, fake, pack=True)
    events = [event(300_000, str(n)) for n in range(8)]
    await h.run(events)
    assert [len(c) for c in fake.calls] == [3, 1]
    assert fake.calls[1][0] == b"".join(blob_encoder("json", True)(events[3:6]))
    assert b"".join(fake.accepted).count(b"\n") == 8 and h.stats.sent_events == 8


async def test_a_permanent_per_record_error_dead_letters_that_record_only(tmp_path: Path) -> None:
    fake = FakeFirehose(plan=lambda call, i: "KMS.AccessDeniedException" if i == 1 else None)
    h = harness(tmp_path, fake)
    await h.run([{"message": "a"}, {"message": "b"}, {"message": "c"}])
    assert len(fake.calls) == 1
    assert [(e["record"]["message"], e["reason"]) for e in h.dead()] == [
        ("b", "KMS.AccessDeniedException: KMS.AccessDeniedException for record 1")
    ]
    assert h.stats.sent_events == 2


# -- whole-call errors ------------------------------------------------------------------------------


class FailingFirst(FakeFirehose):
    def __init__(self, errors: list[Exception]) -> None:
        super().__init__()
        self.errors = errors
        self.attempts = 0

    async def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> dict[str, Any]:
        self.attempts += 1
        if self.errors:
            raise self.errors.pop(0)
        return await super().put_record_batch(DeliveryStreamName, Records)


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "X")


async def test_throttling_5xx_and_connection_errors_are_retried_without_loss(tmp_path: Path) -> None:
    fake = FailingFirst(
        [
            client_error("ServiceUnavailableException", 503),
            client_error("InternalFailure", 500),
            EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ]
    )
    h = harness(tmp_path, fake)
    await h.run([{"message": str(i)} for i in range(10)])
    assert fake.attempts == 4 and h.stats.retries == 3
    assert len(fake.accepted) == 10 and h.stats.sent_events == 10


async def test_a_rejected_call_is_dead_lettered(tmp_path: Path) -> None:
    fake = FailingFirst([client_error("ResourceNotFoundException", 400)])
    h = harness(tmp_path, fake)
    await h.run([{"message": "a"}, {"message": "b"}])
    assert fake.attempts == 1 and fake.accepted == []
    assert [e["reason"].split(":")[0] for e in h.dead()] == ["ResourceNotFoundException"] * 2


async def test_write_raises_unless_everything_was_accepted(tmp_path: Path) -> None:
    config = FirehoseConfig.model_validate({"type": "firehose", "inputs": ["x"], "delivery_stream": "d"})
    output = FirehoseOutput(config, component_context("f", tmp_path))
    fake = FakeFirehose(plan=lambda call, i: "InternalFailure" if call == 0 else None)
    output.clients = FakeClients(fake)  # type: ignore[assignment]
    with pytest.raises(RetryableError, match="1 of 1 records not accepted: InternalFailure"):
        await output.write(Batch("logs", [{"message": "a"}]))
    await output.write(Batch("logs", [{"message": "a"}]))
    assert len(fake.accepted) == 1
