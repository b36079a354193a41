from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from collector.api import ComponentContext
from collector.events import LOGS, Batch
from collector_plugins.processors.parse_logfmt.logfmt import LogfmtError, parse_logfmt
from collector_plugins.processors.parse_logfmt.processor import ParseLogfmt, ParseLogfmtConfig


def make(ctx: ComponentContext, **options: Any) -> ParseLogfmt:
    return ParseLogfmt(ParseLogfmtConfig(type="parse_logfmt", inputs=["src"], **options), ctx)


def logs(*messages: Any, **fields: Any) -> Batch:
    return Batch(LOGS, [{"timestamp": 1.0, "message": m, **fields} for m in messages], nbytes=100)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=1 b=two", {"a": "1", "b": "two"}),
        ('msg="hello world" level=info', {"msg": "hello world", "level": "info"}),
        (r'msg="say \"hi\"\n\tnow \\ \u00e9 \x41 \101"', {"msg": 'say "hi"\n\tnow \\ é A A'}),
        (r'bad="\ud83d \U0010FFFF \U00110000 \q"', {"bad": "\ufffd \U0010ffff \ufffd \\q"}),
        ("cached a= b", {"cached": True, "a": "", "b": True}),
        ("url=http://x/?a=b&c=d k=v", {"url": "http://x/?a=b&c=d", "k": "v"}),
        ("  a=1\t\tb=2  ", {"a": "1", "b": "2"}),
        ("a=1 a=2", {"a": "2"}),
        ('e=""', {"e": ""}),
        ("ключ=значение ü=ö", {"ключ": "значение", "ü": "ö"}),
        ("", {}),
        # Too few hex digits: kept as written (this used to raise ValueError and cost the whole batch).
        (
            r'path="C:\Users\bob" u="\u12" x="\x4" end="\U"',
            {"path": "C:\\Users\bob", "u": "\\u12", "x": "\\x4", "end": "\\U"},
        ),
    ],
)
def test_decoder_follows_go_logfmt(text: str, expected: dict[str, Any]) -> None:
    assert parse_logfmt(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('a="unterminated', "quote"),
        ('a=b"c', "quote"),
        ('a="x"y', "quote"),
        ('"key"=v', "quote"),
        ("=v", "without a key"),
        ("a=1 =2", "without a key"),
    ],
)
def test_decoder_rejects_what_is_not_logfmt(text: str, reason: str) -> None:
    with pytest.raises(LogfmtError, match=reason):
        parse_logfmt(text)


def test_bare_keys_can_be_refused() -> None:
    assert parse_logfmt("disk is full") == {"disk": True, "is": True, "full": True}
    with pytest.raises(LogfmtError, match="key without a value"):
        parse_logfmt("a=1 disk is full", bare_keys=False)


def encode(value: str) -> str:
    """A value as go-logfmt writes it: bare when it can be, else quoted with Go escapes."""
    if value and not any(c.isspace() or c in '"=\\' or not c.isprintable() for c in value):
        return value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped.replace("\t", "\\t") + '"'


keys = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1).filter(
    lambda k: not any(c.isspace() or c in '="' for c in k)
)
values = st.text(st.characters(blacklist_categories=("Cs",)))


@given(st.dictionaries(keys, values, max_size=8))
def test_round_trip_with_a_go_logfmt_style_writer(fields: dict[str, str]) -> None:
    line = " ".join(f"{k}={encode(v)}" for k, v in fields.items())
    assert parse_logfmt(line) == fields


@given(st.text().filter(lambda t: '"' not in t and "\u2603" not in t), st.booleans())
def test_fast_path_without_quotes_agrees_with_the_full_decoder(text: str, bare_keys: bool) -> None:
    # A quoted pair appended sends the same text through the full decoder.
    def decode(line: str) -> dict[str, str | bool] | str:
        try:
            return parse_logfmt(line, bare_keys)
        except LogfmtError as exc:
            return str(exc)

    fast, full = decode(text), decode(text + ' \u2603=""')
    if isinstance(full, dict):
        assert full.pop("\u2603") == ""
    assert fast == full


@given(st.text())
def test_decoder_never_raises_anything_but_logfmt_error(text: str) -> None:
    try:
        parse_logfmt(text)
    except LogfmtError:
        pass


def test_processor_merges_and_keeps_timestamp_a_number(ctx: ComponentContext) -> None:
    proc = make(ctx)
    out = proc.process(logs('timestamp=2026-11-26T10:00:00Z level=info msg="done" took=12ms', b"a=1"))
    assert out is not None
    first, second = out.records
    assert first["timestamp"] == 1.0 and first["timestamp_raw"] == "2026-11-26T10:00:00Z"
    assert first["level"] == "info" and first["msg"] == "done" and first["took"] == "12ms"
    assert second["a"] == "1"
    assert proc.parse_errors == 0


def test_failures_are_kept_tagged_and_counted(ctx: ComponentContext) -> None:
    proc = make(ctx, bare_keys=False)
    batch = logs('a="open', "", "java.lang.NullPointerException at Foo.bar", "ok=1")
    batch.records.append({"timestamp": 1.0})
    out = proc.process(batch)
    assert out is batch and len(out.records) == 5
    assert [r.get("parse_error") for r in out.records] == [
        "invalid logfmt: a misplaced or unterminated quote",
        "invalid logfmt: no key=value pairs",
        "invalid logfmt: a key without a value: java.lang.NullPointerException",
        None,
        "no text in field message",
    ]
    assert out.records[0]["message"] == 'a="open'
    assert proc.counters() == {"parse_errors": 4}


def test_target_overwrite_drop(ctx: ComponentContext) -> None:
    out = make(ctx, target="kv", drop_field=True).process(logs("a=1 b", kv="old"))
    assert out is not None and out.records[0] == {"timestamp": 1.0, "kv": {"a": "1", "b": True}}
    out = make(ctx, target="kv", overwrite=False).process(logs("a=1", kv="old"))
    assert out is not None and out.records[0]["kv"] == "old"
    out = make(ctx, overwrite=False, error_field=None).process(logs("env=prod a=1", env="dev"))
    assert out is not None and out.records[0]["env"] == "dev" and out.records[0]["a"] == "1"
    out = make(ctx, error_field=None).process(logs('x="'))
    assert out is not None and out.records[0] == {"timestamp": 1.0, "message": 'x="'}


def test_config_rules() -> None:
    with pytest.raises(ValidationError, match="drop_field"):
        ParseLogfmtConfig(type="parse_logfmt", inputs=["s"], target="message", drop_field=True)
    with pytest.raises(ValidationError):
        ParseLogfmtConfig(type="parse_logfmt", inputs=["s"], unknown=1)


def test_a_windows_path_costs_nothing(ctx: ComponentContext) -> None:
    # 10,000 lines with one `C:\Users\bob`: each line parsed, that one too (its escapes kept as written).
    messages = [f"n={i} level=info" for i in range(10_000)]
    messages[4321] = r'n=4321 path="C:\Users\bob\x" msg="\u00e9"'
    out = make(ctx).process(logs(*messages))
    assert out is not None and [r["n"] for r in out.records] == [str(i) for i in range(10_000)]
    assert out.records[4321]["path"] == "C:\\Users\bob\\x" and out.records[4321]["msg"] == "\u00e9"
    assert not any("parse_error" in r for r in out.records)
