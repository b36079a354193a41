"""One X-Ray daemon datagram -> one trace record, or the reason it is rejected.

The wire format (what every X-Ray SDK sends to the daemon over UDP): a header
line `{"format":"json","version":1}`, a newline, then one segment or subsegment
document as JSON, no trailing newline. A datagram carries exactly one document.

A valid document becomes the record

    {"raw": <the document's bytes, exactly as received>, "trace_id": ..., "id": ...,
     "name": ..., "start_time": ..., "end_time": ... | "in_progress": True,
     ["parent_id": ..., "type": "subsegment",] "timestamp": <time received>}

`raw` is what the `xray` output forwards, byte for byte; the other keys are
copies for processors, routing and the local trace index. Validation follows
the PutTraceSegments reference (required: `name`, 16-hex `id`, `trace_id`
`1-<8 hex>-<24 hex>`, numeric `start_time`, `end_time` or `in_progress: true`;
a subsegment sent on its own also needs `parent_id`), so a document X-Ray would
reject for its shape is counted here, at the edge, instead of being buffered.

`parse_datagram` never raises: anything that is not a valid datagram returns a
reason (a short snake_case string, the key it is counted under in the loss
ledger).
"""

from __future__ import annotations

import re
from typing import Any, Final

import orjson

HEADER: Final = b'{"format":"json","version":1}\n'
"""The header every X-Ray SDK sends, byte for byte (checked first; other spellings are parsed)."""

MAX_DOCUMENT_BYTES: Final = 64 * 1024
"""X-Ray's segment document size limit (and the most one datagram can carry)."""

# Reasons a datagram is rejected: the loss ledger keys.
BAD_HEADER: Final = "bad_header"
EMPTY_DOCUMENT: Final = "empty_document"
TOO_LARGE: Final = "too_large"
INVALID_UTF8: Final = "invalid_utf8"
INVALID_JSON: Final = "invalid_json"
NOT_AN_OBJECT: Final = "not_an_object"
INVALID_TRACE_ID: Final = "invalid_trace_id"
INVALID_ID: Final = "invalid_id"
MISSING_NAME: Final = "missing_name"
INVALID_START_TIME: Final = "invalid_start_time"
INVALID_END_TIME: Final = "invalid_end_time"
INVALID_PARENT_ID: Final = "invalid_parent_id"
REASONS: Final = (
    BAD_HEADER,
    EMPTY_DOCUMENT,
    TOO_LARGE,
    INVALID_UTF8,
    INVALID_JSON,
    NOT_AN_OBJECT,
    INVALID_TRACE_ID,
    INVALID_ID,
    MISSING_NAME,
    INVALID_START_TIME,
    INVALID_END_TIME,
    INVALID_PARENT_ID,
)

_TRACE_ID = re.compile(r"1-[0-9a-fA-F]{8}-[0-9a-fA-F]{24}")
_SEGMENT_ID = re.compile(r"[0-9a-fA-F]{16}")
_HEADER_LEN: Final = len(HEADER)
_loads = orjson.loads


def _header_ok(header: bytes) -> bool:
    """A header spelled differently from the SDKs' (spaces, key order) but meaning the same."""
    try:
        value = _loads(header)
    except orjson.JSONDecodeError:
        return False
    return (
        isinstance(value, dict)
        and value.get("format") == "json"
        and type(value.get("version")) is int
        and value["version"] == 1
    )


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int


def parse_datagram(data: bytes, received: float, max_document_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any] | str:
    """The record for one datagram, or the reason (a str) it is rejected."""
    if data.startswith(HEADER):
        document = data[_HEADER_LEN:]
    else:
        newline = data.find(b"\n")
        if newline < 0 or not _header_ok(data[:newline]):
            return BAD_HEADER
        document = data[newline + 1 :]
    if not document:
        return EMPTY_DOCUMENT
    if len(document) > max_document_bytes:
        return TOO_LARGE
    try:
        doc = _loads(document)
    except orjson.JSONDecodeError:
        try:
            document.decode("utf-8")
        except UnicodeDecodeError:
            return INVALID_UTF8
        return INVALID_JSON
    if type(doc) is not dict:
        return NOT_AN_OBJECT
    return document_record(doc, document, received)


def document_record(doc: dict[str, Any], raw: bytes, received: float) -> dict[str, Any] | str:
    """Validate a parsed segment document; the record keeping `raw`, or the reason it is invalid."""
    trace_id = doc.get("trace_id")
    if type(trace_id) is not str or not _TRACE_ID.fullmatch(trace_id):
        return INVALID_TRACE_ID
    segment_id = doc.get("id")
    if type(segment_id) is not str or not _SEGMENT_ID.fullmatch(segment_id):
        return INVALID_ID
    name = doc.get("name")
    if type(name) is not str or not name:
        return MISSING_NAME
    start = doc.get("start_time")
    if not _is_number(start):
        return INVALID_START_TIME
    record: dict[str, Any] = {
        "raw": raw,
        "trace_id": trace_id,
        "id": segment_id,
        "name": name,
        "start_time": start,
    }
    end = doc.get("end_time")
    if end is not None:
        if not _is_number(end):
            return INVALID_END_TIME
        record["end_time"] = end
    elif doc.get("in_progress") is True:
        record["in_progress"] = True
    else:
        return INVALID_END_TIME
    parent = doc.get("parent_id")
    if doc.get("type") == "subsegment":
        if type(parent) is not str or not _SEGMENT_ID.fullmatch(parent):
            return INVALID_PARENT_ID
        record["type"] = "subsegment"
        record["parent_id"] = parent
    elif parent is not None:
        if type(parent) is not str or not _SEGMENT_ID.fullmatch(parent):
            return INVALID_PARENT_ID
        record["parent_id"] = parent
    record["timestamp"] = received
    return record
