from __future__ import annotations

import datetime
import enum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.buffer.codec import CodecError, decode_batch, encode, encode_batch
from collector.dlq import DeadLetterQueue, read_dead_letters
from collector.events import LOGS, METRICS, TRACES, Batch, Metric


def roundtrip(batch: Batch) -> Batch:
    return decode_batch(encode_batch(batch))


def test_logs_keep_bytes_and_str_and_nested_fields() -> None:
    records = [
        {"timestamp": 1.5, "message": b"raw \xff bytes"},
        {"timestamp": 2.0, "message": "text é", "fields": {"a": [1, 2.5, None, True], "b": {"c": b"\x00"}}},
        {"message": "", "n": -(2**63), "big": 2**64 - 1, 7: "int key"},
    ]
    out = roundtrip(Batch(LOGS, records, 123))
    assert (out.kind, out.nbytes, out.ack) == (LOGS, 123, None)
    assert out.records == records
    assert type(out.records[0]["message"]) is bytes
    assert type(out.records[1]["message"]) is str


def test_metrics_decode_to_equal_metric_objects() -> None:
    metrics = [
        Metric("cpu", "gauge", 0.5, {"host": "a"}, 1700000000.0, "Percent"),
        Metric("latency", "distribution", {"values": [1.0, 2.0], "counts": [3, 4]}, timestamp=1.0),
        Metric("users", "set", ["a", "b"]),
    ]
    out = roundtrip(Batch(METRICS, metrics, 10))
    assert all(type(m) is Metric for m in out.records)
    assert out.records == metrics
    assert out.records[2].unit is None


def test_a_metrics_source_survives_the_buffer() -> None:
    source = {"format": "prometheus", "type": "counter", "family": "jobs", "sample": "jobs_total", "value": 15456.24}
    metric = Metric("jobs_total", "counter", 3.0, {"job": "node"}, 1.0, None, 10.0, source)
    (out,) = roundtrip(Batch(METRICS, [metric], 1)).records
    assert out == metric and out.source == source
    (plain,) = roundtrip(Batch(METRICS, [Metric("g", "gauge", 1.0)], 1)).records
    assert plain.source is None  # written as the seven fields of before


def test_a_metrics_source_survives_the_dead_letter_queue(tmp_path: Path) -> None:
    source = {"format": "prometheus", "type": "histogram", "family": "x", "le": ["10000", "+Inf"]}
    metric = Metric("x", "distribution", {"bounds": [1e4], "bucket_counts": [1, 0]}, {}, 1.0, None, 5.0, source)
    dlq = DeadLetterQueue(tmp_path, "out", 1 << 20)
    dlq.write(METRICS, [metric], ["rejected"])
    dlq.close()
    (path,) = tmp_path.glob("*.jsonl")
    (entry,) = read_dead_letters(path)
    assert entry["record"] == metric and entry["record"].source == source


def test_traces_keep_raw_documents() -> None:
    docs = [{"trace_id": "1-abc", "id": "def", "name": "svc", "start_time": 1.25, "raw": b'{"id":"def"}'}]
    assert roundtrip(Batch(TRACES, docs)).records == docs


def test_plain_batches_are_exact() -> None:
    assert encode(Batch(LOGS, [{"message": b"x", "n": 1}]))[1] is True
    assert encode(Batch(METRICS, [Metric("m", "counter", 1.0)]))[1] is True


class Color(enum.IntEnum):
    RED = 1


class Tag(str):
    pass


def test_unencodable_values_degrade_within_their_record_only() -> None:
    when = datetime.datetime(2024, 1, 2, 3, 4, 5)
    records = [
        {"message": "ok", "n": 1},
        {"message": "odd", "when": when, "obj": {1, 2}, "huge": 2**70, "pair": (1, 2), "color": Color.RED},
        {"message": Tag("sub")},
        {"message": "ok again"},
    ]
    payload, exact = encode(Batch(LOGS, records))
    assert not exact
    out = decode_batch(payload).records
    assert out[0] == {"message": "ok", "n": 1}
    assert out[1] == {
        "message": "odd",
        "when": str(when),
        "obj": str({1, 2}),
        "huge": str(2**70),
        "pair": [1, 2],
        "color": 1,
    }
    assert out[2] == {"message": "sub"} and type(out[2]["message"]) is str
    assert out[3] == {"message": "ok again"}


def test_records_msgpack_cannot_take_at_all_degrade_alone() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    records = [
        {"message": "before"},
        {"message": "tuple key", "m": {(1, 2): "v"}},
        {"loop": cyclic},
        {"message": "after"},
    ]
    out = decode_batch(encode_batch(Batch(LOGS, records))).records
    assert out[0] == {"message": "before"}
    assert out[1] == {"message": "tuple key", "m": {"(1, 2)": "v"}}
    assert isinstance(out[2], dict) and "loop" in out[2]  # nested to the limit, then text
    assert out[3] == {"message": "after"}


def test_metric_with_odd_value_still_decodes_to_a_metric() -> None:
    metric = Metric("m", "set", ("a", "b"), {"k": "v"})
    payload, exact = encode(Batch(METRICS, [metric]))
    assert not exact
    (out,) = decode_batch(payload).records
    assert type(out) is Metric and out.value == ["a", "b"] and out.tags == {"k": "v"}


@pytest.mark.parametrize("payload", [b"", b"\xc1", b"\x93\xa4logs\x00", b"\x93\xa3xyz\x00\x90", b"\x92\x01\x02"])
def test_garbage_is_a_codec_error(payload: bytes) -> None:
    with pytest.raises(CodecError):
        decode_batch(payload)


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.text(max_size=8), json_like, max_size=5), max_size=5), st.integers(0, 2**40))
def test_any_json_like_log_batch_roundtrips_exactly(records: list[dict[str, Any]], nbytes: int) -> None:
    payload, exact = encode(Batch(LOGS, records, nbytes))
    assert exact
    out = decode_batch(payload)
    assert out.records == records and out.nbytes == nbytes
