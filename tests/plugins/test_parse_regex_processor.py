from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from collector.api import ComponentContext
from collector.events import LOGS, Batch
from collector_plugins.processors.parse_regex.processor import ParseRegex, ParseRegexConfig

ACCESS = (
    r'^(?P<client>\S+) \S+ (?P<user>\S+) \[(?P<timestamp>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) '
    r'(?P<protocol>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-)'
)
LINE = '203.0.113.9 - alice [26/Nov/2026:10:00:00 +0000] "GET /api/items?id=1 HTTP/1.1" 200 512 "-" "curl/8.0"'


def make(ctx: ComponentContext, **options: Any) -> ParseRegex:
    options.setdefault("pattern", ACCESS)
    return ParseRegex(ParseRegexConfig(type="parse_regex", inputs=["src"], **options), ctx)


def logs(*messages: Any, **fields: Any) -> Batch:
    return Batch(LOGS, [{"timestamp": 1.0, "message": m, **fields} for m in messages], nbytes=100)


def test_named_groups_become_fields_and_timestamp_stays_a_number(ctx: ComponentContext) -> None:
    proc = make(ctx)
    out = proc.process(logs(LINE, LINE.encode()))
    assert out is not None
    first, second = out.records
    assert first == {
        "timestamp": 1.0,
        "message": LINE,
        "client": "203.0.113.9",
        "user": "alice",
        "timestamp_raw": "26/Nov/2026:10:00:00 +0000",
        "method": "GET",
        "path": "/api/items?id=1",
        "protocol": "HTTP/1.1",
        "status": "200",
        "bytes": "512",
    }
    assert second["path"] == "/api/items?id=1", "bytes messages are decoded and matched"
    assert proc.parse_errors == 0


def test_no_match_keeps_the_record_tagged_and_counted(ctx: ComponentContext) -> None:
    proc = make(ctx)
    batch = logs("not an access log", LINE)
    batch.records.append({"timestamp": 1.0})
    batch.records.append({"timestamp": 1.0, "message": 42})
    out = proc.process(batch)
    assert out is batch and len(out.records) == 4
    assert out.records[0] == {"timestamp": 1.0, "message": "not an access log", "parse_error": "regex did not match"}
    assert "parse_error" not in out.records[1]
    assert out.records[2]["parse_error"] == out.records[3]["parse_error"] == "no text in field message"
    assert proc.parse_errors == 3 and proc.counters() == {"parse_errors": 3}


def test_error_field_null_leaves_failures_untouched(ctx: ComponentContext) -> None:
    out = make(ctx, error_field=None).process(logs("nope"))
    assert out is not None and out.records == [{"timestamp": 1.0, "message": "nope"}]


def test_search_is_unanchored_and_unmatched_optional_groups_are_left_out(ctx: ComponentContext) -> None:
    proc = make(ctx, pattern=r"level=(?P<level>\w+)(?: code=(?P<code>\d+))?")
    out = proc.process(logs("ts=1 level=warn msg=x", "level=error code=7"))
    assert out is not None
    assert out.records[0]["level"] == "warn" and "code" not in out.records[0]
    assert out.records[1]["code"] == "7"


def test_target_overwrite_and_drop_field(ctx: ComponentContext) -> None:
    pattern = r"^(?P<level>[A-Z]+):(?P<text>.*)$"
    out = make(ctx, pattern=pattern, target="log").process(logs("WARNING:disk low", level="keep"))
    assert out is not None
    assert out.records[0]["log"] == {"level": "WARNING", "text": "disk low"} and out.records[0]["level"] == "keep"
    out = make(ctx, pattern=pattern, overwrite=False).process(logs("WARNING:disk low", level="keep"))
    assert out is not None and out.records[0]["level"] == "keep" and out.records[0]["text"] == "disk low"
    out = make(ctx, pattern=pattern, drop_field=True).process(logs("INFO:ok", "no match here"))
    assert out is not None
    assert out.records[0] == {"timestamp": 1.0, "level": "INFO", "text": "ok"}
    assert out.records[1]["message"] == "no match here", "a failed record keeps its source field"


def test_other_field(ctx: ComponentContext) -> None:
    proc = make(ctx, pattern=r"(?P<user>\w+)@(?P<domain>[\w.]+)", field="email")
    out = proc.process(Batch(LOGS, [{"timestamp": 1.0, "message": "m", "email": "bob@example.org"}]))
    assert out is not None and out.records[0]["domain"] == "example.org"


def test_config_rules() -> None:
    with pytest.raises(ValidationError, match="invalid regular expression"):
        ParseRegexConfig(type="parse_regex", inputs=["s"], pattern="(?P<a>")
    with pytest.raises(ValidationError, match="no named group"):
        ParseRegexConfig(type="parse_regex", inputs=["s"], pattern=r"(\w+)")
    with pytest.raises(ValidationError, match="drop_field"):
        ParseRegexConfig(type="parse_regex", inputs=["s"], pattern=r"(?P<message>.*)", drop_field=True)
    with pytest.raises(ValidationError, match="drop_field"):
        ParseRegexConfig(type="parse_regex", inputs=["s"], pattern=r"(?P<a>.*)", target="message", drop_field=True)
    with pytest.raises(ValidationError):
        ParseRegexConfig(type="parse_regex", inputs=["s"])
