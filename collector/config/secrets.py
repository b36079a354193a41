"""Which config values are secret, and keeping them out of everything the collector prints.

A field is secret when its model says so, in one place:
- its type is pydantic's `SecretStr` / `SecretBytes` (also hides it from repr and dumps), or
- it is declared with `Field(..., json_schema_extra=SECRET)` (for a plain `str` the plugin reads
  as is); `SECRET` also marks it `writeOnly` in the JSON Schema.
Everything below a secret field is secret too (a list of tokens, a mapping of headers).

Error messages never show a secret's value: the loader leaves out the "(got ...)" part for a
secret path and scrubs every secret value out of every message (`redact`). Values that came
from `${VAR}` substitution are treated the same way for the issue about that key (see
`collector.config.source`, which keeps that provenance).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo

__all__ = ["REDACTED", "SECRET", "is_secret_field", "is_secret_path", "redact", "secret_field_paths", "secret_values"]

SECRET: dict[str, Any] = {"secret": True, "writeOnly": True}
REDACTED = "<redacted>"

_SECRET_TYPES = (SecretStr, SecretBytes)
_ANYWHERE = 8
_UNIONS = (typing.Union, types.UnionType)


def is_secret_field(info: FieldInfo) -> bool:
    """True when the field is declared secret (the `SECRET` marker or a Secret type)."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and extra.get("secret") is True:
        return True
    return _is_secret_type(info.annotation)


def _is_secret_type(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, _SECRET_TYPES):
        return True
    return any(_is_secret_type(arg) for arg in typing.get_args(annotation))


def _members(annotation: Any) -> list[Any]:
    """The types a value of `annotation` may be, with Annotated and Optional unwrapped."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in _UNIONS:
        return [m for arg in typing.get_args(annotation) if arg is not type(None) for m in _members(arg)]
    return [annotation]


def _items(annotation: Any) -> Any | None:
    """The item type of a list/tuple/set or the value type of a mapping; None for anything else."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if not isinstance(origin, type) or not args:
        return None
    if issubclass(origin, Mapping):
        return args[-1]
    if issubclass(origin, Sequence | set | frozenset) and not issubclass(origin, str | bytes):
        return args[0]
    return None


def is_secret_path(annotation: Any, loc: Sequence[str | int]) -> bool:
    """True when `loc` (a key path, as pydantic reports errors) is at or below a secret field.

    `annotation` is a model class or any type containing models. Union member tags that pydantic
    puts in a location (`"str"`, a model's name) are followed where they match.
    """
    if not loc:
        return False
    part, rest = loc[0], loc[1:]
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            info = member.model_fields.get(part) if isinstance(part, str) else None
            if info is not None and (is_secret_field(info) or is_secret_path(info.annotation, rest)):
                return True
            if member.__name__ == part and is_secret_path(member, rest):
                return True
        else:
            items = _items(member)
            if items is not None and is_secret_path(items, rest):
                return True
            if getattr(member, "__name__", None) == part and is_secret_path(member, rest):
                return True
    return False


def secret_field_paths(model: type[BaseModel]) -> list[tuple[str, ...]]:
    """Every secret field's key path in `model`, `*` standing for any list index or mapping key."""
    out: list[tuple[str, ...]] = []
    _collect_paths(model, (), out, set())
    return out


def _collect_paths(annotation: Any, prefix: tuple[str, ...], out: list[tuple[str, ...]], seen: set[Any]) -> None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            if member in seen:
                continue  # a recursive model: its secrets are listed where it first appears
            for name, info in member.model_fields.items():
                if is_secret_field(info):
                    out.append((*prefix, name))
                else:
                    _collect_paths(info.annotation, (*prefix, name), out, seen | {member})
        else:
            items = _items(member)
            if items is not None:
                _collect_paths(items, (*prefix, "*"), out, seen)


def secret_values(model: type[BaseModel], data: Any) -> set[str]:
    """The text of every value at a secret path of `data` (raw config data or a model instance)."""
    found: set[str] = set()
    for path in secret_field_paths(model):
        for value in _at_path(data, path):
            found.update(_scalars(value))
    return {text for text in found if text}


def _at_path(data: Any, path: tuple[str, ...]) -> Iterator[Any]:
    if not path:
        yield data
        return
    part, rest = path[0], path[1:]
    if part == "*":
        children: Iterable[Any] = (
            data.values() if isinstance(data, Mapping) else data if isinstance(data, list | tuple) else ()
        )
        for child in children:
            yield from _at_path(child, rest)
    elif isinstance(data, Mapping):
        if part in data:
            yield from _at_path(data[part], rest)
    elif isinstance(data, BaseModel) and part in type(data).model_fields:
        yield from _at_path(getattr(data, part), rest)


def _scalars(value: Any) -> Iterator[str]:
    if value is None:
        return
    if isinstance(value, _SECRET_TYPES):
        secret = value.get_secret_value()
        yield secret.decode(errors="replace") if isinstance(secret, bytes) else secret
    elif isinstance(value, Mapping):
        for child in value.values():
            yield from _scalars(child)
    elif isinstance(value, list | tuple | set | frozenset):
        for child in value:
            yield from _scalars(child)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _scalars(getattr(value, name))
    else:
        yield str(value)


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced by `REDACTED`.

    Longest first, so a secret that contains another is replaced whole. A short secret (under
    `_ANYWHERE` characters) is matched only where it does not continue a word or number, so that
    `42` does not eat the digits of an unrelated `1423`; in any quoting (`'42'`) it still matches.
    """
    for secret in sorted(set(secrets), key=len, reverse=True):
        if not secret:
            continue
        pattern = re.escape(secret)
        if len(secret) >= _ANYWHERE:
            text = re.sub(pattern, REDACTED, text)
            continue
        if secret[0].isalnum():
            pattern = r"(?<![A-Za-z0-9])" + pattern
        if secret[-1].isalnum():
            pattern += r"(?![A-Za-z0-9])"
        text = re.sub(pattern, REDACTED, text)
    return text
