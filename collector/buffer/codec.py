"""Batch <-> bytes for disk buffer frames (msgpack).

Payload = msgpack `[kind, nbytes, records]`, packed with one `packb` call per
batch (`use_bin_type=True`, unpacked with `raw=False`: bytes stay bytes, str
stays str). Log and trace records are dicts and pack natively. A `Metric` is
packed as `ExtType(METRIC_EXT, [name, type, value, tags, timestamp, unit, interval])`
by the `default=` hook, so it decodes back to an equal `Metric` wherever it sits (frames
written before `interval` existed hold six fields and decode with `interval=0.0`).

Values msgpack cannot represent never fail a batch. The packer runs with
`strict_types=True`, so every value that is not exactly a msgpack type reaches
the hook: tuples become lists, subclasses of str/bytes/int/float/dict/list
become their base type, anything else (and ints beyond 64 bits) becomes
`str(value)`. Such a batch is marked *inexact*: it is decoded once to check it
(a tuple used as a dict key cannot come back), and a record that still fails is
packed on its own after `_sanitize`. The disk buffer only hands out the
producer's own Batch object (its in-memory tail) when the encoding was exact,
so a unit looks the same whether it came from memory or from disk.
(`bytearray`/`memoryview` values are packed natively and come back as bytes.)
"""

from __future__ import annotations

from typing import Any

import msgpack

from collector.events import KINDS, Batch, Metric

METRIC_EXT = 1
_MAX_SANITIZE_DEPTH = 64  # deeper than this (or cyclic) becomes text


class CodecError(ValueError):
    """A payload that does not decode to a batch."""


class _Hook:
    """The `default=` hook; remembers whether it had to change anything."""

    __slots__ = ("exact",)

    def __init__(self) -> None:
        self.exact = True

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, Metric):
            if type(obj) is not Metric:
                self.exact = False
            fields = [obj.name, obj.type, obj.value, obj.tags, obj.timestamp, obj.unit, obj.interval]
            if obj.source is not None:
                fields.append(obj.source)  # an eighth field only when set: older frames stay readable
            packed = msgpack.packb(fields, use_bin_type=True, strict_types=True, default=self)
            return msgpack.ExtType(METRIC_EXT, packed)
        self.exact = False
        if isinstance(obj, str):
            return str.__str__(obj)
        if isinstance(obj, bytes):
            return bytes(obj)
        if isinstance(obj, int):
            # a subclass (IntEnum) becomes a plain int; a plain int here is out of msgpack's range
            return int(obj) if type(obj) is not int else str(obj)
        if isinstance(obj, float):
            return float(obj)
        if isinstance(obj, dict):
            return dict(obj)
        if isinstance(obj, list | tuple):
            return list(obj)
        return str(obj)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == METRIC_EXT:
        # Six fields in frames written before `interval` was added, seven since, eight with a `source`.
        return Metric(*msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext_hook))
    return msgpack.ExtType(code, data)


def encode(batch: Batch) -> tuple[bytes, bool]:
    """The payload for `batch`, and whether it decodes to records equal to (and of the types of) the originals."""
    hook = _Hook()
    try:
        payload = msgpack.packb(
            [batch.kind, batch.nbytes, batch.records], use_bin_type=True, strict_types=True, default=hook
        )
    except (TypeError, ValueError, OverflowError):
        return _encode_per_record(batch), False
    if hook.exact:
        return payload, True
    try:
        decode_batch(payload)
    except CodecError:
        return _encode_per_record(batch), False
    return payload, False


def encode_batch(batch: Batch) -> bytes:
    """The msgpack payload `[kind, nbytes, records]` for `batch`; never fails."""
    return encode(batch)[0]


def _encode_per_record(batch: Batch) -> bytes:
    """Slow path: pack records one by one, degrading only those that cannot round-trip."""
    parts = [
        b"\x93",  # fixarray of 3
        msgpack.packb(batch.kind, use_bin_type=True),
        msgpack.packb(batch.nbytes, use_bin_type=True),
        msgpack.Packer(use_bin_type=True).pack_array_header(len(batch.records)),
    ]
    for record in batch.records:
        parts.append(_encode_record(record))
    return b"".join(parts)


def _encode_record(record: Any) -> bytes:
    for candidate in (record, _sanitize(record, 0)):
        hook = _Hook()
        try:
            packed: bytes = msgpack.packb(candidate, use_bin_type=True, strict_types=True, default=hook)
            if not hook.exact:
                msgpack.unpackb(packed, raw=False, strict_map_key=False, ext_hook=_ext_hook)
            return packed
        except (TypeError, ValueError, OverflowError):
            continue
    out: bytes = msgpack.packb(_safe_str(record), use_bin_type=True)
    return out


def _sanitize(value: Any, depth: int) -> Any:
    """A copy of `value` made only of msgpack types, str() where nothing else works."""
    if depth > _MAX_SANITIZE_DEPTH:
        return _safe_str(value)
    if value is None or type(value) in (bool, str, bytes, float):
        return value
    if type(value) is int:
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, Metric):
        return Metric(
            _sanitize(value.name, depth + 1),
            _sanitize(value.type, depth + 1),
            _sanitize(value.value, depth + 1),
            _sanitize(value.tags, depth + 1),
            _sanitize(value.timestamp, depth + 1),
            _sanitize(value.unit, depth + 1),
            _sanitize(value.interval, depth + 1),
            _sanitize(value.source, depth + 1),
        )
    if isinstance(value, dict):
        return {
            (k if type(k) in (str, bytes, int, float, bool) or k is None else _safe_str(k)): _sanitize(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_sanitize(v, depth + 1) for v in value]
    return _safe_str(value)


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the batch either
        return f"<unprintable {type(value).__name__}>"


def decode_batch(payload: bytes | memoryview) -> Batch:
    """The batch a payload encodes (`ack=None`); raises `CodecError` if it is not one."""
    try:
        obj = msgpack.unpackb(payload, raw=False, strict_map_key=False, ext_hook=_ext_hook)
    except Exception as exc:  # msgpack raises several types for malformed input
        raise CodecError(f"undecodable payload: {type(exc).__name__}: {exc}") from None
    if type(obj) is not list or len(obj) != 3:
        raise CodecError("payload is not [kind, nbytes, records]")
    kind, nbytes, records = obj
    if kind not in KINDS or type(nbytes) is not int or type(records) is not list:
        raise CodecError("payload is not [kind, nbytes, records]")
    return Batch(kind, records, nbytes)
