"""OTLP request bodies to messages and answers to bodies: gzip within bounds, protobuf and OTLP JSON.

    message = decode_body(body, "gzip", PROTOBUF, ExportTraceServiceRequest, max_decompressed)
    body = encode_message(response, JSON)

Every failure is one of two exceptions, which the HTTP server answers without ever retrying:
`InvalidBody` (400: corrupt gzip, bad protobuf, bad JSON, an id that is not hex) and `TooLarge` (413: the body
expands past `max_decompressed`; the decompressor stops one byte past the bound, so a gzip bomb costs at most
that much memory). Nothing else escapes: `decode_body` is fuzzed with random and mutated bodies.

OTLP JSON is protobuf's JSON mapping with three differences the spec makes: `traceId`, `spanId` and
`parentSpanId` are hex strings (not base64), enums are integers (the mapping accepts both), and keys are
lowerCamelCase (the mapping accepts the proto names too). So the ids are rewritten to base64 before
`json_format.ParseDict`, and back to hex in nothing we send (responses carry no ids). Unknown fields are
ignored, as the spec asks of receivers.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from collector_plugins.common.otlp.views import VIEWS, as_view

PROTOBUF = "protobuf"
JSON = "json"
CONTENT_TYPES = {"application/x-protobuf": PROTOBUF, "application/json": JSON}
MEDIA_TYPES = {PROTOBUF: "application/x-protobuf", JSON: "application/json"}

# Keys of the messages whose id fields are hex in OTLP JSON (both spellings the JSON mapping accepts).
_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")
_CHILDREN = (
    "resourceSpans",
    "scopeSpans",
    "spans",
    "links",
    "resourceLogs",
    "scopeLogs",
    "logRecords",
    "resourceMetrics",
    "scopeMetrics",
    "metrics",
    "gauge",
    "sum",
    "histogram",
    "exponentialHistogram",
    "summary",
    "dataPoints",
    "exemplars",
    "resource_spans",
    "scope_spans",
    "resource_logs",
    "scope_logs",
    "log_records",
    "resource_metrics",
    "scope_metrics",
    "exponential_histogram",
    "data_points",
)


class InvalidBody(ValueError):
    """The body is not a valid request of its type: answer 400, never retryable."""


class TooLarge(ValueError):
    """The body is (or expands to) more than the configured bound: answer 413."""


def media_type(content_type: str) -> str | None:
    """PROTOBUF or JSON for a Content-Type header (parameters such as charset ignored); None if unsupported."""
    return CONTENT_TYPES.get(content_type.partition(";")[0].strip().lower())


def gunzip(body: bytes, limit: int) -> bytes:
    """A gzip body decompressed (every member), refused with `TooLarge` past `limit` bytes."""
    out: list[bytes] = []
    total = 0
    data = body
    try:
        while True:
            inflater = zlib.decompressobj(wbits=31)
            chunk = inflater.decompress(data, limit - total + 1)
            total += len(chunk)
            if total > limit:
                raise TooLarge(f"the body expands past {limit} bytes")
            out.append(chunk)
            if not inflater.eof:
                if inflater.unconsumed_tail:
                    raise TooLarge(f"the body expands past {limit} bytes")
                raise InvalidBody("the gzip body is truncated")
            data = inflater.unused_data
            if not data:
                break
    except zlib.error as exc:
        raise InvalidBody(f"the body is not valid gzip: {exc}") from None
    return b"".join(out)


def decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """The body under its Content-Encoding ("" or identity: as it is; gzip: inflated within `limit`)."""
    if encoding == "gzip":
        return gunzip(body, limit)
    if len(body) > limit:
        raise TooLarge(f"the body is more than {limit} bytes")
    return body


def parse_message(data: bytes, kind: str, message_type: type[Message]) -> Any:
    """`data` as a message of `message_type`, from protobuf or OTLP JSON.

    Trace and log requests come back as their receive views (plugins/common/otlp/views.py), which the
    converters read faster; other types as themselves.
    """
    view = VIEWS.get(message_type)
    if kind == PROTOBUF:
        message = (view or message_type)()
        try:
            message.ParseFromString(data)
        except (DecodeError, RecursionError, ValueError) as exc:
            raise InvalidBody(f"the body is not a valid {message_type.__name__}: {exc}") from None
        return message
    message = message_type()
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidBody("the JSON body is not an object")
    try:
        _hex_ids_to_base64(document, 0)
        json_format.ParseDict(document, message, ignore_unknown_fields=True)
    except InvalidBody:
        raise
    except (json_format.ParseError, RecursionError, ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InvalidBody(f"the JSON body is not a valid {message_type.__name__}: {exc}") from None
    return as_view(message, view) if view else message


def decode_body(body: bytes, encoding: str, kind: str, message_type: type[Message], limit: int) -> Any:
    """A request body as a message (raises `InvalidBody` or `TooLarge`)."""
    return parse_message(decompress(body, encoding, limit), kind, message_type)


def encode_message(message: Message, kind: str) -> bytes:
    """A response message in the request's encoding (OTLP JSON: lowerCamelCase, enums as integers)."""
    if kind == PROTOBUF:
        return message.SerializeToString()
    return orjson.dumps(json_format.MessageToDict(message, use_integers_for_enums=True))


def _hex_ids_to_base64(node: dict[str, Any], depth: int) -> None:
    """Rewrite the hex ids of an OTLP JSON request in place to the base64 the JSON mapping reads."""
    if depth > 12:  # deeper than any OTLP message with ids: nothing to rewrite down there
        return
    for key in _ID_KEYS:
        value = node.get(key)
        if isinstance(value, str) and value:
            try:
                node[key] = base64.b64encode(bytes.fromhex(value)).decode()
            except ValueError:
                raise InvalidBody(f"{key} {value[:40]!r} is not hex") from None
    for key in _CHILDREN:
        child = node.get(key)
        if isinstance(child, dict):
            _hex_ids_to_base64(child, depth + 1)
        elif isinstance(child, list):
            for item in child:
                if isinstance(item, dict):
                    _hex_ids_to_base64(item, depth + 1)
