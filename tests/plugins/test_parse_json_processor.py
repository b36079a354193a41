from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from collector.api import ComponentContext
from collector.events import LOGS, Batch
from collector_plugins.processors.parse_json.processor import ParseJson, ParseJsonConfig


def make(ctx: ComponentContext, **options: Any) -> ParseJson:
    return ParseJson(ParseJsonConfig(type="parse_json", inputs=["src"], **options), ctx)


def logs(*messages: Any, **fields: Any) -> Batch:
    return Batch(LOGS, [{"timestamp": 1.0, "message": m, **fields} for m in messages], nbytes=100)


def test_merges_objects_into_the_record(ctx: ComponentContext) -> None:
    proc = make(ctx)
    out = proc.process(logs('{"level": "info", "n": 1, "nested": {"a": [1, 2]}}', b'{"level": "warn"}', env="dev"))
    assert out is not None
    first, second = out.records
    assert first == {
        "timestamp": 1.0,
        "message": '{"level": "info", "n": 1, "nested": {"a": [1, 2]}}',
        "env": "dev",
        "level": "info",
        "n": 1,
        "nested": {"a": [1, 2]},
    }
    assert second["level"] == "warn", "bytes are parsed without decoding"
    assert proc.parse_errors == 0


def test_overwrite(ctx: ComponentContext) -> None:
    batch = logs('{"env": "prod", "message": "inner"}', env="dev")
    out = make(ctx, overwrite=False).process(batch)
    assert out is not None
    assert out.records[0]["env"] == "dev" and out.records[0]["message"] == '{"env": "prod", "message": "inner"}'
    out = make(ctx).process(logs('{"env": "prod", "message": "inner"}', env="dev"))
    assert out is not None
    assert out.records[0]["env"] == "prod" and out.records[0]["message"] == "inner"


def test_drop_field_removes_the_source_after_success_only(ctx: ComponentContext) -> None:
    proc = make(ctx, drop_field=True)
    out = proc.process(logs('{"a": 1}', "not json"))
    assert out is not None
    assert out.records[0] == {"timestamp": 1.0, "a": 1}
    assert out.records[1]["message"] == "not json"
    # A parsed `message` key survives dropping the source field.
    out = proc.process(logs('{"message": "inner"}'))
    assert out is not None and out.records[0]["message"] == "inner"


def test_target_takes_any_json_value(ctx: ComponentContext) -> None:
    proc = make(ctx, target="parsed")
    out = proc.process(logs('{"a": 1}', "[1, 2]", "3", '"s"', "null"))
    assert out is not None
    assert [r["parsed"] for r in out.records] == [{"a": 1}, [1, 2], 3, "s", None]
    assert all("message" in r for r in out.records)
    assert proc.parse_errors == 0


def test_target_overwrite_false(ctx: ComponentContext) -> None:
    out = make(ctx, target="parsed", overwrite=False).process(logs("1", parsed="keep me"))
    assert out is not None and out.records[0]["parsed"] == "keep me"


def test_other_source_field_and_drop(ctx: ComponentContext) -> None:
    proc = make(ctx, field="log", target="doc", drop_field=True)
    out = proc.process(Batch(LOGS, [{"timestamp": 1.0, "message": "m", "log": b'{"x": true}'}]))
    assert out is not None and out.records[0] == {"timestamp": 1.0, "message": "m", "doc": {"x": True}}


def test_errors_are_kept_counted_and_marked(ctx: ComponentContext) -> None:
    proc = make(ctx, error_field="_parse_error")
    batch = logs("{bad", "[1]", '{"ok": 1}')
    batch.records.append({"timestamp": 1.0})
    batch.records.append({"timestamp": 1.0, "message": 42})
    out = proc.process(batch)
    assert out is batch
    reasons = [r.get("_parse_error") for r in out.records]
    assert reasons == ["invalid JSON", "not a JSON object", None, "no field message", "invalid JSON"]
    assert out.records[0]["message"] == "{bad"
    assert proc.parse_errors == 4 and proc.dropped == 0


def test_errors_without_error_field_leave_records_unchanged(ctx: ComponentContext) -> None:
    proc = make(ctx)
    out = proc.process(logs("nope"))
    assert out is not None and out.records == [{"timestamp": 1.0, "message": "nope"}]
    assert proc.parse_errors == 1


def test_on_error_drop(ctx: ComponentContext) -> None:
    proc = make(ctx, on_error="drop", error_field="_e")
    out = proc.process(logs("{bad", '{"ok": 1}', "[]", '{"ok": 2}'))
    assert out is not None
    assert [r["ok"] for r in out.records] == [1, 2]
    assert out.nbytes == 50
    assert proc.parse_errors == 2 and proc.dropped == 2
    assert proc.process(logs("x", "y")) is None
    assert proc.parse_errors == 4


def test_timestamp_stays_a_number(ctx: ComponentContext) -> None:
    proc = make(ctx)
    out = proc.process(
        logs('{"timestamp": "2024-05-01T12:00:00Z"}', '{"timestamp": 1700000000.5}', '{"timestamp": true}')
    )
    assert out is not None
    iso, number, boolean = out.records
    assert iso["timestamp"] == 1.0 and iso["timestamp_raw"] == "2024-05-01T12:00:00Z"
    assert number["timestamp"] == 1700000000.5 and "timestamp_raw" not in number
    assert boolean["timestamp"] == 1.0 and boolean["timestamp_raw"] is True


def test_unicode_and_escapes(ctx: ComponentContext) -> None:
    out = make(ctx).process(logs('{"text": "caf\\u00e9 \\"q\\""}', '{"text": "naïve"}'.encode()))
    assert out is not None
    assert [r["text"] for r in out.records] == ['café "q"', "naïve"]


def test_config_rules() -> None:
    with pytest.raises(ValidationError, match="drop_field"):
        ParseJsonConfig(type="parse_json", inputs=["s"], target="message", drop_field=True)
    with pytest.raises(ValidationError):
        ParseJsonConfig(type="parse_json", inputs=["s"], on_error="raise")
    with pytest.raises(ValidationError):
        ParseJsonConfig(type="parse_json", inputs=["s"], field="")
    assert ParseJson.accepted_kinds(ParseJsonConfig(type="parse_json", inputs=["s"])) == frozenset({LOGS})
