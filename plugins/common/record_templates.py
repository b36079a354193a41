"""Names computed per record: log groups and streams, S3 keys, partition keys.

A record template is a string with placeholders:

- `{host}`, `{instance_id}`, ...: a host fact (any name in the `host` mapping);
- `{field}` or `{a.b}`: a field of the record (`a.b` is the key "a.b" if the
  record has it, else the nested `record["a"]["b"]`); missing, null or empty
  renders as `missing`;
- `{%Y}` `{%m}` `{%d}` `{%H}` `{%M}` `{%S}`: parts of the record's `timestamp`
  (epoch seconds, UTC; the current time when the record has none);
- `{{` and `}}`: literal braces.

A template is compiled once into a list of parts; rendering a batch is one pass
with no parsing, and a template with host facts only is rendered once.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")
_TIME_PARTS = {"%Y", "%m", "%d", "%H", "%M", "%S"}


def split_template(template: str) -> list[tuple[str, str]]:
    """Split `template` into ("text", literal) and ("name", placeholder) parts, `{{`/`}}` unescaped.

    Raises ValueError on an unclosed `{` or a single `}`. The names are not checked: each kind of template
    (record templates here, host-fact templates in `host_templates.py`) allows its own.
    """
    parts: list[tuple[str, str]] = []
    literal: list[str] = []
    i, n = 0, len(template)
    while i < n:
        char = template[i]
        if char == "{":
            if template.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = template.find("}", i + 1)
            if end < 0:
                raise ValueError(f"invalid template {template!r}: '{{' at {i} is never closed (write '{{{{')")
            if literal:
                parts.append(("text", "".join(literal)))
                literal = []
            parts.append(("name", template[i + 1 : end]))
            i = end + 1
        elif char == "}":
            if not template.startswith("}}", i):
                raise ValueError(f"invalid template {template!r}: single '}}' at {i} (write '}}}}')")
            literal.append("}")
            i += 2
        else:
            literal.append(char)
            i += 1
    if literal:
        parts.append(("text", "".join(literal)))
    return parts


def parse_record_template(template: str) -> list[tuple[str, str]]:
    """Split `template` into ("text", literal) and ("name", placeholder) parts; ValueError when malformed."""
    parts = split_template(template)
    for kind, name in parts:
        if kind == "name" and name not in _TIME_PARTS and not _NAME_RE.match(name):
            raise ValueError(
                f"invalid placeholder {{{name}}} in {template!r}: use a host fact ({{host}}), a record field "
                f"({{container_name}}, {{k8s.namespace}}) or a date part ({{%Y}} {{%m}} {{%d}} {{%H}} {{%M}} "
                "{%S}); write literal braces as '{{' and '}}'"
            )
    return parts


def check_record_template(template: str) -> str:
    """Validate the syntax of `template` (for pydantic validators); returns it unchanged."""
    parse_record_template(template)
    return template


def template_names(template: str) -> list[str]:
    """The placeholder names of `template` (e.g. to know whether it needs `{instance_id}`)."""
    return [value for kind, value in parse_record_template(template) if kind == "name"]


def _field_getter(name: str, missing: str) -> Callable[[dict[str, Any]], str]:
    path = name.split(".")

    def get(record: dict[str, Any]) -> str:
        value = record.get(name)
        if value is None and len(path) > 1:
            value = record
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
                if value is None:
                    break
        if value is None or value == "" or value == b"":
            return missing
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return value if isinstance(value, str) else str(value)

    return get


def _escaped(get: Callable[[dict[str, Any]], str], escape: Callable[[str], str]) -> Callable[[dict[str, Any]], str]:
    def get_escaped(record: dict[str, Any]) -> str:
        return escape(get(record))

    return get_escaped


_MAX_TIMESTAMP = 253402300800  # 10000-01-01T00:00:00Z: strftime's years have four digits


class _Clock:
    """UTC date parts of a timestamp, computed once per distinct minute."""

    __slots__ = ("_key", "_parts")

    def __init__(self) -> None:
        self._key = -1
        self._parts: time.struct_time = time.gmtime(0)

    def part(self, record: dict[str, Any], directive: str) -> str:
        ts = record.get("timestamp")
        # A record without a usable time (absent, NaN, infinite, beyond year 9999) is filed under now.
        if isinstance(ts, int | float) and 0 <= ts < _MAX_TIMESTAMP:
            seconds = int(ts)
        else:
            seconds = int(time.time())
        if directive == "%S":
            return f"{seconds % 60:02d}"
        minute = seconds // 60
        if minute != self._key:
            self._key, self._parts = minute, time.gmtime(minute * 60)
        return time.strftime(directive, self._parts)


def _date_part(clock: _Clock, directive: str, record: dict[str, Any]) -> str:
    return clock.part(record, directive)


class RecordTemplate:
    """A compiled record template (see the module docstring for the syntax)."""

    def __init__(
        self,
        template: str,
        host: dict[str, str],
        *,
        missing: str = "unknown",
        escape: Callable[[str], str] | None = None,
    ) -> None:
        """`{host}`/`{instance_id}`... host facts; `{field}` or `{a.b}` a record field (nested dicts);
        `{%Y}` `{%m}` `{%d}` `{%H}` `{%M}` parts of the record's `timestamp` (UTC); `{{`/`}}` literal braces.
        Raises ValueError with a clear message for a malformed template. A missing field renders as `missing`.
        `escape`, when given, is applied to every host fact and field value (not to the template's own text),
        e.g. `key_escape.escape_value` where a value must not add path segments."""
        self.template = template
        clock = _Clock()
        pieces: list[str | Callable[[dict[str, Any]], str]] = []
        for kind, value in parse_record_template(template):
            if kind == "text":
                pieces.append(value)
            elif value in host:
                fact = host[value] or missing
                pieces.append(escape(fact) if escape is not None else fact)
            elif value in _TIME_PARTS:
                pieces.append(functools.partial(_date_part, clock, value))
            else:
                getter = _field_getter(value, missing)
                if escape is not None:
                    getter = _escaped(getter, escape)
                pieces.append(getter)
        # Merge neighbouring constant pieces so rendering touches as few parts as possible.
        merged: list[str | Callable[[dict[str, Any]], str]] = []
        for piece in pieces:
            if isinstance(piece, str) and merged and isinstance(merged[-1], str):
                merged[-1] += piece
            else:
                merged.append(piece)
        self.static: bool = all(isinstance(p, str) for p in merged)
        """True when the result does not depend on the record (render once)."""
        self._constant = "".join(p for p in merged if isinstance(p, str)) if self.static else ""
        self._pieces = merged

    def render(self, record: dict[str, Any]) -> str:
        if self.static:
            return self._constant
        return "".join(p if isinstance(p, str) else p(record) for p in self._pieces)

    def group(self, records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """Records by rendered key, order kept within each key; one pass, no per-record formatting when static."""
        if self.static:
            return {self._constant: list(records)} if records else {}
        pieces = self._pieces
        if len(pieces) == 1:
            render = pieces[0]
            assert not isinstance(render, str)
        else:
            render = self.render
        groups: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            key = render(record)
            bucket = groups.get(key)
            if bucket is None:
                groups[key] = [record]
            else:
                bucket.append(record)
        return groups

    def __repr__(self) -> str:
        return f"RecordTemplate({self.template!r})"
