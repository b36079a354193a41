"""Turning a batch into bytes: the `json` and `text` codecs shared by the outputs.

Both codecs produce newline-terminated lines (every line, the last included, ends
with `\\n`), encoded in one pass per batch:

- `json`: one orjson document per record. Log and trace dicts are serialised as
  they are; `bytes` values (raw messages) are decoded as UTF-8 with invalid
  sequences replaced, and a `Metric` becomes its `to_dict()`. Both happen in
  orjson's `default=` hook, so records that need neither pay nothing for it.
- `text`: the record's `message` only (bytes written as they are, str as UTF-8);
  a record without a `message` (a metric, a trace, a parsed log whose message was
  dropped) is written as its JSON line.

Encoding never raises for a record's content: a record orjson cannot serialise
(a non-string key, an exotic value, nesting deeper than orjson allows) is
written with every unknown value turned into its `str()`, or as a JSON object
`{"unserialisable": "<repr>"}` as the last resort, so one odd record cannot make
an output fail its whole batch forever.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import orjson

from collector.events import Metric

Codec = Literal["json", "text"]

_dumps = orjson.dumps
_NL = orjson.OPT_APPEND_NEWLINE
_LENIENT = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS


def json_default(obj: Any) -> Any:
    """orjson `default=` hook: bytes -> str (UTF-8, replace), Metric -> dict, sets -> lists."""
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).decode("utf-8", "replace")
    if isinstance(obj, Metric):
        return obj.to_dict()
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError


def _lenient_default(obj: Any) -> Any:
    try:
        return json_default(obj)
    except TypeError:
        return str(obj)


def _encode_one_lenient(record: Any) -> bytes:
    try:
        return _dumps(record, default=_lenient_default, option=_LENIENT)
    except (orjson.JSONEncodeError, TypeError, ValueError):
        return _dumps({"unserialisable": repr(record)[:4096]}, option=_NL)


def encode_json(records: list[Any]) -> bytes:
    """One JSON line per record, newline-terminated."""
    default = json_default
    try:
        return b"".join([_dumps(r, default=default, option=_NL) for r in records])
    except (orjson.JSONEncodeError, TypeError):
        # Slow path for a batch holding at least one odd record; the fast path stays branch-free.
        return b"".join([_encode_one_lenient(r) for r in records])


def _text_line(record: Any) -> bytes:
    message = record.get("message") if isinstance(record, dict) else None
    if message is None:
        return _encode_one_lenient(record)
    if isinstance(message, str):
        return message.encode("utf-8", "replace") + b"\n"
    if isinstance(message, bytes | bytearray | memoryview):
        return bytes(message) + b"\n"
    return str(message).encode("utf-8", "replace") + b"\n"


def encode_text(records: list[Any]) -> bytes:
    """The `message` of each record, newline-terminated; JSON lines for records without one."""
    if not records:
        return b""
    try:
        messages = [r["message"] for r in records]
    except (KeyError, TypeError):
        return b"".join([_text_line(r) for r in records])
    first = messages[0]
    try:
        if isinstance(first, str):
            return ("\n".join(messages) + "\n").encode("utf-8", "replace")
        if isinstance(first, bytes):
            return b"\n".join(messages) + b"\n"
    except TypeError:
        pass  # a mix of str and bytes: the per-record path below handles it
    return b"".join([_text_line(r) for r in records])


ENCODERS: dict[str, Callable[[list[Any]], bytes]] = {"json": encode_json, "text": encode_text}


def encoder_for(codec: Codec) -> Callable[[list[Any]], bytes]:
    """The batch encoder for a codec name."""
    return ENCODERS[codec]
