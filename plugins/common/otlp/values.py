"""OTLP values both ways: attribute lists and `AnyValue`s to plain Python values, and back.

    attributes(span.attributes)        -> {"http.method": "GET", "retry": 2, "tags": ["a", "b"]}
    any_value(log.body)                -> "text" | 3 | 1.5 | True | b"raw" | [..] | {..} | None
    set_attributes(msg.attributes, d)  fills a repeated KeyValue field from a dict (the inverse)

An `AnyValue` maps to the Python value its case holds: `string_value` → str, `bool_value` → bool, `int_value`
→ int, `double_value` → float, `bytes_value` → bytes, `array_value` → list, `kvlist_value` → dict, an empty
`AnyValue` → None. A repeated key keeps the last value (what a dict can hold). The inverse maps each Python
type back to its case; an int outside the signed 64-bit range and any other type become their `str()`.

This is the receive hot path (every span has attributes), so `attributes` does the common string case inline
and leaves nested values to a function call. The receive views (views.py) hand out span and log attributes as
encoded `KeyValue`s: `raw_attributes` decodes each distinct one once and remembers its scalar value in a
bounded cache (`KeyValueCache`), since most attribute values repeat from span to span.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_CONTAINERS = (list, dict)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    """An attribute list as a dict (a repeated key: the last wins)."""
    out: dict[str, Any] = {}
    for kv in kvs:
        value = kv.value
        case = value.WhichOneof("value")
        if case == "string_value":
            out[kv.key] = value.string_value
        elif case is None:
            out[kv.key] = None
        elif case == "array_value":
            out[kv.key] = [any_value(v) for v in value.array_value.values]
        elif case == "kvlist_value":
            out[kv.key] = attributes(value.kvlist_value.values)
        else:
            out[kv.key] = getattr(value, case)
    return out


class KeyValueCache:
    """Encoded `KeyValue` → (key, value), for scalar values of encodings up to `max_bytes` long.

    Bounded: `max_entries` entries of at most `max_bytes` each (plus the decoded key and value); when full it
    is emptied and refills with what is current. Only scalars (str, int, float, bool, bytes, None) are kept:
    they are immutable, so records may share them. Arrays and maps are decoded afresh each time.
    """

    __slots__ = ("entries", "max_bytes", "max_entries")

    def __init__(self, max_entries: int = 8192, max_bytes: int = 256) -> None:
        self.entries: dict[bytes, tuple[str, Any]] = {}
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def decode(self, raw: bytes) -> tuple[str, Any]:
        """The key and value of an encoded `KeyValue` (raises `DecodeError` if it is not one)."""
        kv = KeyValue.FromString(raw)
        value = kv.value
        text = value.string_value  # the common case in one access ("" for any other case)
        key_value = (kv.key, text if text else any_value(value))
        if len(raw) <= self.max_bytes and type(key_value[1]) not in _CONTAINERS:
            entries = self.entries
            if len(entries) >= self.max_entries:
                entries.clear()
            entries[raw] = key_value
        return key_value


KEY_VALUES = KeyValueCache()


def raw_attributes(raws: Iterable[bytes], cache: KeyValueCache = KEY_VALUES) -> dict[str, Any]:
    """Encoded `KeyValue`s as a dict (a repeated key: the last wins); `DecodeError` if one is not valid."""
    out: dict[str, Any] = {}
    known = cache.entries.get
    for raw in raws:
        hit = known(raw)
        if hit is None:
            hit = cache.decode(raw)
        out[hit[0]] = hit[1]
    return out


def any_value(value: AnyValue) -> Any:
    """One `AnyValue` as a Python value."""
    case = value.WhichOneof("value")
    if case == "string_value":
        return value.string_value
    if case is None:
        return None
    if case == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if case == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, case)


def set_any_value(target: AnyValue, value: Any) -> None:
    """Fill an (empty) `AnyValue` from a Python value; None leaves it empty."""
    if isinstance(value, str):
        target.string_value = value
    elif value is None:
        return
    elif isinstance(value, bool):  # before int: bool is an int subclass
        target.bool_value = value
    elif isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            target.int_value = value
        else:
            target.string_value = str(value)
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes | bytearray | memoryview):
        target.bytes_value = bytes(value)
    elif isinstance(value, list | tuple):
        values = target.array_value.values
        for item in value:
            set_any_value(values.add(), item)
        if not value:
            target.array_value.SetInParent()
    elif isinstance(value, Mapping):
        set_attributes(target.kvlist_value.values, value)
        if not value:
            target.kvlist_value.SetInParent()
    else:
        target.string_value = str(value)


def set_attributes(field: Any, values: Mapping[str, Any] | None) -> None:
    """Append `values` to a repeated `KeyValue` field (`span.attributes`, `resource.attributes`...)."""
    if not values:
        return
    for key, value in values.items():
        kv = field.add()
        kv.key = str(key)
        set_any_value(kv.value, value)


def hex_id(raw: bytes, size: int) -> str:
    """An id of `size` bytes as lowercase hex; "" when it has another length or is all zero (no id)."""
    if len(raw) != size or raw == bytes(size):
        return ""
    return raw.hex()


def id_bytes(text: str | None, size: int) -> bytes:
    """The inverse of `hex_id`: "" or None (or malformed hex of the wrong length) is the empty id."""
    if not text:
        return b""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return b""
    return raw if len(raw) == size else b""
