"""Every PutLogEvents limit at its edge: exactly at it, one over, the 26-byte overhead, the 24 h span,
messages over the per-event maximum, unsorted input. moto enforces none of the sizes: these tests do."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from collector.config.errors import ConfigError
from collector.config.loader import parse_config
from collector_plugins.outputs.cloudwatch_logs.limits import (
    CHECKED,
    EVENT_OVERHEAD,
    LIMITS,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_BATCH_SPAN_MS,
    MAX_EVENT_BYTES,
    PUT_LOG_EVENTS,
    max_message_bytes,
)
from collector_plugins.outputs.cloudwatch_logs.output import CloudWatchLogsConfig
from collector_plugins.outputs.cloudwatch_logs.requests import PART_MARKER_ROOM, EventPlanner, split_message

T0 = 1_795_000_000.0  # seconds
MAX_MESSAGE = MAX_BATCH_BYTES.value - EVENT_OVERHEAD.value  # 1,048,550


def recs(messages: list[str | bytes], ts: float = T0, step: float = 0.0) -> list[dict]:
    return [{"timestamp": ts + i * step, "message": m} for i, m in enumerate(messages)]


def assert_valid(planner: EventPlanner, plan_requests: list) -> None:
    """What the API demands of every request, checked independently of the planner's own arithmetic."""
    for request in plan_requests:
        events = request.events
        assert 1 <= len(events) <= planner.max_events
        size = sum(len(e["message"].encode()) + 26 for e in events)
        assert size == request.nbytes <= planner.max_bytes
        stamps = [e["timestamp"] for e in events]
        assert stamps == sorted(stamps)
        assert stamps[-1] - stamps[0] <= planner.max_span_ms
        assert all(1 <= len(e["message"].encode()) <= planner.max_message for e in events)


def test_the_documented_values_with_source_and_date() -> None:
    assert MAX_BATCH_BYTES.value == 1_048_576
    assert MAX_BATCH_EVENTS.value == 10_000
    assert EVENT_OVERHEAD.value == 26
    assert MAX_EVENT_BYTES.value == 1_048_576  # "1 MB" in the current reference; 256 KB in older ones
    assert MAX_BATCH_SPAN_MS.value == 86_400_000
    assert max_message_bytes() == MAX_MESSAGE
    for limit in (MAX_BATCH_BYTES, MAX_BATCH_EVENTS, EVENT_OVERHEAD, MAX_EVENT_BYTES, MAX_BATCH_SPAN_MS):
        assert limit.source == PUT_LOG_EVENTS and limit.checked == CHECKED == "2026-11-26"
    # The driver's batcher gets count and bytes, but no per-record limit: long messages are split, not dropped.
    assert LIMITS.max_events is MAX_BATCH_EVENTS and LIMITS.max_bytes is MAX_BATCH_BYTES
    assert LIMITS.max_record_bytes is None


# -- batch bytes, with the per-event overhead ------------------------------------------------------


def test_batch_bytes_exactly_at_the_limit_is_one_request() -> None:
    planner = EventPlanner()
    size = MAX_BATCH_BYTES.value // 4 - 26  # 4 x (262118 + 26) = 1,048,576
    plan = planner.plan(recs(["a" * size] * 4))
    assert [len(r.events) for r in plan.requests] == [4]
    assert plan.requests[0].nbytes == MAX_BATCH_BYTES.value
    assert_valid(planner, plan.requests)


def test_batch_bytes_one_over_the_limit_is_two_requests() -> None:
    planner = EventPlanner()
    sizes = [MAX_BATCH_BYTES.value // 4 - 26] * 3 + [MAX_BATCH_BYTES.value // 4 - 25]
    plan = planner.plan(recs(["a" * s for s in sizes]))
    assert [len(r.events) for r in plan.requests] == [3, 1]
    assert_valid(planner, plan.requests)


def test_the_26_byte_overhead_is_counted_per_event() -> None:
    # 1000 messages of 1023 bytes: 1,023,000 message bytes fit 1 MiB, but with 26 bytes each (1,049,000) they don't.
    planner = EventPlanner()
    plan = planner.plan(recs(["m" * 1023] * 1000))
    assert len(plan.requests) == 2
    first = plan.requests[0]
    assert len(first.events) == MAX_BATCH_BYTES.value // (1023 + 26) == 999
    assert first.nbytes == 999 * (1023 + 26)
    assert_valid(planner, plan.requests)


def test_bytes_are_utf8_bytes_not_characters() -> None:
    planner = EventPlanner(max_bytes=26 + 4096)
    plan = planner.plan(recs(["é" * 2048, "é"]))  # 4096 bytes, then 2 bytes more: over
    assert [len(r.events) for r in plan.requests] == [1, 1]
    assert plan.requests[0].nbytes == 26 + 4096


def test_invalid_utf8_counts_as_the_replacement_character() -> None:
    planner = EventPlanner()
    plan = planner.plan(recs([b"ok \xff\xfe end"]))
    message = plan.requests[0].events[0]["message"]
    assert message == "ok \ufffd\ufffd end"
    assert plan.requests[0].nbytes == len(message.encode()) + 26 == 3 + 6 + 4 + 26


def test_record_size_matches_what_the_request_counts() -> None:
    planner = EventPlanner()
    for body in [{"message": "plain"}, {"message": "ünïcödé"}, {"message": b"raw"}, {"message": b"bad \xff"}, {"n": 1}]:
        record = {"timestamp": T0, **body}
        plan = planner.plan([record])
        assert planner.record_size(record) == sum(r.nbytes for r in plan.requests), record
    # A message to be split: the estimate keeps room for the longest marker, so it never undercounts.
    record = {"timestamp": T0, "message": "x" * (MAX_MESSAGE + 10)}
    actual = sum(r.nbytes for r in planner.plan([record]).requests)
    assert actual <= planner.record_size(record) <= actual + 2 * PART_MARKER_ROOM


# -- events per batch ---------------------------------------------------------------------------------


def test_exactly_max_events_is_one_request() -> None:
    planner = EventPlanner()
    plan = planner.plan(recs(["e"] * 10_000))
    assert [len(r.events) for r in plan.requests] == [10_000]


def test_one_event_over_max_events_is_two_requests() -> None:
    planner = EventPlanner()
    plan = planner.plan(recs(["e"] * 10_001))
    assert [len(r.events) for r in plan.requests] == [10_000, 1]
    assert_valid(planner, plan.requests)


# -- the 24-hour span ---------------------------------------------------------------------------------


def test_exactly_24_hours_is_one_request() -> None:
    planner = EventPlanner()
    plan = planner.plan(recs(["first", "last"], step=86_400.0))
    assert [len(r.events) for r in plan.requests] == [2]


def test_a_batch_spanning_more_than_24_hours_is_split() -> None:
    planner = EventPlanner()
    records = recs(["a", "b"], step=86_400.001)  # 24 h + 1 ms
    records += [{"timestamp": T0 + 3600, "message": "mid"}]
    plan = planner.plan(records)
    assert [[e["message"] for e in r.events] for r in plan.requests] == [["a", "mid"], ["b"]]
    assert_valid(planner, plan.requests)


def test_a_week_of_events_in_one_batch() -> None:
    planner = EventPlanner()
    plan = planner.plan(recs([f"h{i}" for i in range(7 * 24)], step=3600.0))
    assert len(plan.requests) == 7
    assert_valid(planner, plan.requests)
    assert [e["message"] for r in plan.requests for e in r.events] == [f"h{i}" for i in range(7 * 24)]


# -- the per-event maximum ------------------------------------------------------------------------------


def test_a_message_exactly_at_the_maximum_is_sent_whole() -> None:
    planner = EventPlanner()
    plan = planner.plan(recs(["x" * MAX_MESSAGE]))
    assert plan.split_records == 0
    assert len(plan.requests) == 1 and plan.requests[0].nbytes == MAX_BATCH_BYTES.value


def test_a_message_over_the_maximum_is_split_into_marked_parts_never_dropped() -> None:
    planner = EventPlanner()
    text = "".join(chr(ord("a") + i % 26) for i in range(MAX_MESSAGE + 1))
    plan = planner.plan(recs(["before", text, "after"]), owners=[10, 11, 12])
    assert plan.split_records == 1
    assert_valid(planner, plan.requests)
    events = [e for r in plan.requests for e in r.events]
    owners = [o for r in plan.requests for o in r.owners]
    parts = [e["message"] for e in events[1:-1]]
    assert [p.split("] ", 1)[0] + "]" for p in parts] == ["[collector: part 1/2]", "[collector: part 2/2]"]
    assert "".join(p.split("] ", 1)[1] for p in parts) == text
    assert owners == [10, 11, 11, 12]
    assert all(e["timestamp"] == int(T0 * 1000) for e in events)


def test_splitting_never_cuts_a_utf8_character() -> None:
    planner = EventPlanner(max_event_bytes=2048)
    text = "€" * 2000  # 3 bytes each, 6000 bytes
    parts = split_message(text, planner.max_message)
    assert all(len(p.encode()) <= planner.max_message for p in parts)
    assert "".join(p.split("] ", 1)[1] for p in parts) == text


def test_lowered_per_event_maximum_old_256kb_rule() -> None:
    planner = EventPlanner(max_event_bytes=262_144)
    assert planner.max_message == 262_144 - 26
    assert planner.plan(recs(["x" * (262_144 - 26)])).split_records == 0
    plan = planner.plan(recs(["x" * (262_144 - 25)]))
    assert plan.split_records == 1 and len(plan.requests[0].events) == 2
    assert_valid(planner, plan.requests)


def test_part_marker_room_covers_any_part_count() -> None:
    assert len(f"[collector: part {9_999_999}/{9_999_999}] ") == PART_MARKER_ROOM


# -- order --------------------------------------------------------------------------------------------


def test_unsorted_input_is_sorted_stably_and_owners_follow() -> None:
    planner = EventPlanner()
    records = [
        {"timestamp": T0 + 5, "message": "c"},
        {"timestamp": T0 + 1, "message": "a1"},
        {"timestamp": T0 + 9, "message": "d"},
        {"timestamp": T0 + 1, "message": "a2"},
        {"timestamp": T0 + 3, "message": "b"},
    ]
    plan = planner.plan(records)
    request = plan.requests[0]
    assert [e["message"] for e in request.events] == ["a1", "a2", "b", "c", "d"]
    assert request.owners == [1, 3, 4, 0, 2]
    assert_valid(planner, plan.requests)


def test_timestamps_in_milliseconds_and_missing_ones_take_the_current_time() -> None:
    planner = EventPlanner(clock=lambda: T0 + 60)
    plan = planner.plan(
        [{"timestamp": T0 + 0.0015, "message": "a"}, {"message": "b"}, {"timestamp": "x", "message": "c"}]
    )
    stamps = [e["timestamp"] for e in plan.requests[0].events]
    assert stamps == [int((T0 + 0.0015) * 1000), int((T0 + 60) * 1000), int((T0 + 60) * 1000)]


def test_empty_messages_are_skipped_and_counted() -> None:
    planner = EventPlanner()
    plan = planner.plan(recs(["", "x", b""]))
    assert plan.empty_records == 2
    assert [e["message"] for r in plan.requests for e in r.events] == ["x"]
    assert planner.plan(recs([""])).requests == []


def test_json_codec_and_records_without_message() -> None:
    planner = EventPlanner(codec="json")
    plan = planner.plan([{"timestamp": T0, "message": b"m", "level": "info"}])
    assert plan.requests[0].events[0]["message"] == '{"timestamp":1795000000.0,"message":"m","level":"info"}'
    text = EventPlanner().plan([{"timestamp": T0, "level": "warn"}])
    assert text.requests[0].events[0]["message"] == '{"timestamp":1795000000.0,"level":"warn"}'


# -- users may lower the limits, never raise them ---------------------------------------------------------


def test_lowered_count_and_bytes() -> None:
    planner = EventPlanner(max_events=3, max_bytes=2048)
    plan = planner.plan(recs(["x" * 500] * 7))
    assert [len(r.events) for r in plan.requests] == [3, 3, 1]
    plan = EventPlanner(max_bytes=2048).plan(recs(["x" * 1000] * 3))
    assert [len(r.events) for r in plan.requests] == [1, 1, 1]


def config(**extra: object) -> dict:
    return {"type": "cloudwatch_logs", "inputs": ["app"], "log_group": "/a", **extra}


@pytest.mark.parametrize(
    ("extra", "hint"),
    [
        ({"max_event_bytes": 1_048_577}, "1048576"),
        ({"max_event_bytes": "2MiB"}, PUT_LOG_EVENTS),
        ({"max_event_bytes": 100}, "between"),
        ({"max_batch_span": "25h"}, "24h"),
        ({"max_batch_span": 0}, "between"),
        ({"batch": {"max_bytes": 512}}, "at least"),
        ({"retention_days": 2}, "one of"),
    ],
)
def test_raising_a_limit_is_rejected_with_the_documented_maximum(extra: dict, hint: str) -> None:
    with pytest.raises(ValidationError, match=hint.replace(".", r"\.")):
        CloudWatchLogsConfig.model_validate(config(**extra))


def test_lowering_is_accepted() -> None:
    cfg = CloudWatchLogsConfig.model_validate(
        config(max_event_bytes="256KiB", max_batch_span="1h", batch={"max_events": 500, "max_bytes": "512KiB"})
    )
    assert cfg.max_event_bytes == 262_144 and cfg.max_batch_span == 3600.0


@pytest.mark.parametrize(("key", "value"), [("max_events", 10_001), ("max_bytes", 1_048_577)])
def test_the_config_validator_rejects_batch_settings_over_the_api_limits(key: str, value: int) -> None:
    text = f"""
inputs:
  app: {{type: generator}}
outputs:
  cwl: {{type: cloudwatch_logs, inputs: [app], log_group: /a, batch: {{{key}: {value}}}}}
"""
    with pytest.raises(ConfigError, match=PUT_LOG_EVENTS.replace(".", r"\.")):
        parse_config(text, "test.yaml")
