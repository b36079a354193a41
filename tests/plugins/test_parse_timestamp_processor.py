from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from collector.api import ComponentContext
from collector.events import LOGS, Batch
from collector_plugins.common.timestamps import NAMED_FORMATS, rfc3339_epoch, timestamp_parser
from collector_plugins.processors.parse_timestamp.processor import ParseTimestamp, ParseTimestampConfig

T0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC).timestamp()  # 1795687200
PARIS = ZoneInfo("Europe/Paris")


def make(ctx: ComponentContext, **options: Any) -> ParseTimestamp:
    options.setdefault("field", "time")
    return ParseTimestamp(ParseTimestampConfig(type="parse_timestamp", inputs=["src"], **options), ctx)


def logs(*times: Any) -> Batch:
    return Batch(LOGS, [{"timestamp": 1.0, "message": "m", "time": t} for t in times], nbytes=10)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-26T10:00:00Z", T0),
        ("2026-11-26T10:00:00.669794202Z", T0 + 0.669794),
        ("2026-11-26T11:00:00.5+01:00", T0 + 0.5),
        ("2026-11-26T05:30:00-04:30", T0),
        ("2026-11-26 10:00:00Z", T0),
        ("2026-11-26t10:00:00z", T0),
        ("2026-11-26T10:00:00", None),  # no offset: ambiguous
        ("2026-11-26T10:00:00.x1Z", None),
        ("2026-13-26T10:00:00Z", None),
        ("2026-11-26T24:00:00Z", None),
        ("garbage", None),
        ("", None),
    ],
)
def test_rfc3339(text: str, expected: float | None) -> None:
    result = rfc3339_epoch(text)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected, abs=1e-6)


def test_named_formats() -> None:
    utc = ZoneInfo("UTC")
    iso = timestamp_parser("iso8601", PARIS)
    assert iso("2026-11-26T11:00:00") == T0, "no offset: read in the configured zone (CET, +01:00)"
    assert iso("2026-07-01T12:00:00") == datetime(2026, 7, 1, 10, tzinfo=UTC).timestamp(), "summer time, +02:00"
    assert iso("20261126T100000Z") == T0
    assert iso(b"2026-11-26T10:00:00+00:00") == T0
    assert iso("26/11/2026") is None
    unix = timestamp_parser("unix", utc)
    assert unix(T0) == T0 and unix(int(T0)) == T0 and unix(f"{T0}") == T0 and unix(" 1795687200.25 ") == T0 + 0.25
    assert unix(True) is None and unix("1e9") is None and unix("nan") is None and unix(float("inf")) is None
    assert unix("9" * 30) is None and unix(1e300) is None
    assert timestamp_parser("unix_ms", utc)("1795687200123") == pytest.approx(T0 + 0.123)
    assert timestamp_parser("unix_us", utc)(1795687200123456) == pytest.approx(T0 + 0.123456)
    assert timestamp_parser("unix_ns", utc)("1795687200123456789") == pytest.approx(T0 + 0.123456789)
    assert timestamp_parser("unix", utc)({"a": 1}) is None


def test_rfc3164_infers_the_year() -> None:
    now = datetime(2026, 1, 2, 12, tzinfo=UTC).timestamp()
    parse = timestamp_parser("rfc3164", ZoneInfo("UTC"), now=lambda: now)
    assert parse("Jan  2 11:59:00") == datetime(2026, 1, 2, 11, 59, tzinfo=UTC).timestamp()
    assert parse("Jan 02 11:59:00") == datetime(2026, 1, 2, 11, 59, tzinfo=UTC).timestamp()
    assert parse("Dec 31 23:00:00") == datetime(2025, 12, 31, 23, tzinfo=UTC).timestamp(), "last year's December"
    assert parse("Jan  3 11:00:00") == datetime(2026, 1, 3, 11, tzinfo=UTC).timestamp(), "clock skew: within a day"
    leap_now = datetime(2028, 3, 1, tzinfo=UTC).timestamp()
    leap = timestamp_parser("rfc3164", ZoneInfo("UTC"), now=lambda: leap_now)
    assert leap("Feb 29 10:00:00") == datetime(2028, 2, 29, 10, tzinfo=UTC).timestamp()
    paris = timestamp_parser("rfc3164", PARIS, now=lambda: T0)
    assert paris("Nov 26 11:00:00") == T0
    assert parse("Foo  2 11:59:00") is None and parse("Feb 30 10:00:00") is None and parse("Jan 2 1:2:3") is None


def test_strptime_patterns() -> None:
    clf = timestamp_parser("%d/%b/%Y:%H:%M:%S %z", ZoneInfo("UTC"))
    assert clf("26/Nov/2026:11:00:00 +0100") == T0
    naive = timestamp_parser("%Y-%m-%d %H:%M:%S,%f", PARIS)
    assert naive("2026-11-26 11:00:00,250") == T0 + 0.25
    assert naive("2026-11-26") is None and naive(None) is None
    epoch_digits = timestamp_parser("%Y%m%d", ZoneInfo("UTC"))
    assert epoch_digits(20261126) == datetime(2026, 11, 26, tzinfo=UTC).timestamp()
    with pytest.raises(ValueError, match="unknown timestamp format"):
        timestamp_parser("epoch", PARIS)
    with pytest.raises(ValueError, match="invalid strptime pattern"):
        timestamp_parser("%Y-%Q", PARIS)


@given(st.one_of(st.text(), st.binary(), st.integers(), st.floats(), st.none(), st.booleans()))
def test_no_value_makes_a_parser_raise(value: Any) -> None:
    for spec in (*NAMED_FORMATS, "%Y-%m-%dT%H:%M:%S%z", "%d/%b/%Y"):
        result = timestamp_parser(spec, PARIS)(value)
        assert result is None or isinstance(result, float)


def test_processor_sets_the_record_time_trying_formats_in_order(ctx: ComponentContext) -> None:
    proc = make(ctx, formats=["rfc3339", "unix_ms"])
    out = proc.process(logs("2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z", 1795687200500, "yesterday"))
    assert out is not None
    times = [r["timestamp"] for r in out.records]
    assert times == [T0, T0, T0 + 0.5, 1.0]
    assert out.records[3]["parse_error"] == "timestamp matched no format" and out.records[3]["time"] == "yesterday"
    assert all("parse_error" not in r for r in out.records[:3])
    assert proc.counters() == {"parse_errors": 1}


def test_processor_target_drop_and_missing_field(ctx: ComponentContext) -> None:
    proc = make(ctx, formats=["iso8601"], timezone="Europe/Paris", target="event_time", drop_field=True)
    batch = logs("2026-11-26T11:00:00")
    batch.records.append({"timestamp": 1.0, "message": "no time"})
    out = proc.process(batch)
    assert out is not None
    assert out.records[0] == {"timestamp": 1.0, "message": "m", "event_time": T0}
    assert out.records[1] == {"timestamp": 1.0, "message": "no time", "parse_error": "no field time"}
    out = make(ctx, formats=["rfc3339"], error_field=None).process(logs("bad"))
    assert out is not None and "parse_error" not in out.records[0]


def test_same_text_of_another_type_is_not_taken_from_the_memo(ctx: ComponentContext) -> None:
    proc = make(ctx, formats=["unix"])
    out = proc.process(logs("100", b"100", 100, "100"))
    assert out is not None and [r["timestamp"] for r in out.records] == [100.0, 100.0, 100.0, 100.0]


def test_config_rules() -> None:
    with pytest.raises(ValidationError, match="unknown time zone"):
        ParseTimestampConfig(type="parse_timestamp", inputs=["s"], field="t", formats=["rfc3339"], timezone="Mars/Base")
    with pytest.raises(ValidationError, match="unknown timestamp format"):
        ParseTimestampConfig(type="parse_timestamp", inputs=["s"], field="t", formats=["rfc3339", "julian"])
    with pytest.raises(ValidationError):
        ParseTimestampConfig(type="parse_timestamp", inputs=["s"], field="t", formats=[])
    with pytest.raises(ValidationError, match="drop_field"):
        ParseTimestampConfig(
            type="parse_timestamp", inputs=["s"], field="t", formats=["unix"], target="t", drop_field=True
        )


def test_a_record_already_tagged_keeps_its_first_reason(ctx: ComponentContext) -> None:
    batch = logs("bad")
    batch.records[0]["parse_error"] = "invalid logfmt: a misplaced or unterminated quote"
    out = make(ctx, formats=["rfc3339"]).process(batch)
    assert out is not None and out.records[0]["parse_error"] == "invalid logfmt: a misplaced or unterminated quote"
