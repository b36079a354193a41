"""OTLP traces ↔ span records (signal kind "traces"), per the OTLP record contract.

    conversion = spans_from_request(request)       # ExportTraceServiceRequest -> Conversion(records, rejected, ...)
    request = request_from_spans(records)         # the inverse, spans grouped by resource and scope

One record per span, a plain dict:

    {"format": "otlp", "trace_id": "<32 hex>", "span_id": "<16 hex>", "parent_span_id": "<16 hex>" or "",
     "trace_state": str, "flags": int, "name": str, "kind": "server" (unspecified|internal|server|client|
     producer|consumer), "start_time": float s, "end_time": float s, "start_time_unix_nano": int,
     "end_time_unix_nano": int, "attributes": {...}, "events": [{"name", "time_unix_nano", "attributes",
     "dropped_attributes_count"}], "links": [{"trace_id", "span_id", "trace_state", "attributes", "flags"}],
     "status": {"code": 0|1|2, "message": str}, "resource": {...}, "scope": {"name", "version", "attributes"},
     "dropped_attributes_count": int, "dropped_events_count": int, "dropped_links_count": int,
     "timestamp": float s (= end_time)}

The spans of one resource and scope share one `resource` dict and one `scope` dict (records' nested values
are never modified in place, collector/events.py), which also makes the conversion cheaper.

A span whose trace id is not 16 non-zero bytes, whose span id is not 8 non-zero bytes, or that ends before it
starts is rejected alone (counted in `Conversion.rejected`, the first reason kept for the client's
`partial_success.error_message`); its neighbours are kept. A parent span id of another length than 8 bytes is
read as "no parent" (a root span), as the SDKs do with an invalid parent context.

A span whose attributes, events, links or status do not decode (the receive view defers their validation,
views.py) is rejected alone too.

This is the receive hot path: one pass per span over the receive view (views.py) with the fields read once,
ids converted with `bytes.hex()`, each distinct encoded attribute and status decoded once (values.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from collector_plugins.common.otlp.conversion import Conversion
from collector_plugins.common.otlp.values import attributes, id_bytes, raw_attributes, set_attributes
from collector_plugins.common.otlp.views import as_traces_view

KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")
KIND_NUMBERS = {name: number for number, name in enumerate(KINDS)}
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_NANOS = 1e9


def scope_dict(scope: Any) -> dict[str, Any]:
    """An InstrumentationScope as the record's `scope`: name, version and attributes, always all three."""
    return {"name": scope.name, "version": scope.version, "attributes": attributes(scope.attributes)}


def spans_from_request(request: Any) -> Conversion:
    """Every valid span of the request as a record; invalid spans counted in `rejected`.

    `request` is an ExportTraceServiceRequest or its receive view (views.py, what the `otlp` input decodes).
    """
    view = as_traces_view(request)
    out = Conversion()
    records = out.records
    append = records.append
    kinds = KINDS
    nkinds = len(KINDS)
    for resource_spans in view.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_dict(scope_spans.scope)
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
                    out.reject(1, "a span's trace_id is not 16 bytes or is all zero")
                    continue
                if len(span_id) != 8 or span_id == _ZERO_SPAN:
                    out.reject(1, "a span's span_id is not 8 bytes or is all zero")
                    continue
                if end < start:
                    out.reject(1, "a span ends before it starts (end_time_unix_nano < start_time_unix_nano)")
                    continue
                events = span.events
                links = span.links
                try:
                    span_attributes = raw_attributes(span.attributes)
                    status = _status(span.status)
                    span_events = [_event(Span.Event.FromString(e)) for e in events] if events else []
                    span_links = [_link(Span.Link.FromString(link)) for link in links] if links else []
                except DecodeError:
                    out.reject(1, "a span's attributes, events, links or status do not decode (invalid UTF-8?)")
                    continue
                parent = span.parent_span_id
                kind = span.kind
                end_time = end / _NANOS
                append(
                    {
                        "format": "otlp",
                        "trace_id": trace_id.hex(),
                        "span_id": span_id.hex(),
                        "parent_span_id": parent.hex() if len(parent) == 8 and parent != _ZERO_SPAN else "",
                        "trace_state": span.trace_state,
                        "flags": span.flags,
                        "name": span.name,
                        "kind": kinds[kind] if 0 <= kind < nkinds else "unspecified",
                        "start_time": start / _NANOS,
                        "end_time": end_time,
                        "start_time_unix_nano": start,
                        "end_time_unix_nano": end,
                        "attributes": span_attributes,
                        "events": span_events,
                        "links": span_links,
                        "status": status,
                        "resource": resource,
                        "scope": scope,
                        "dropped_attributes_count": span.dropped_attributes_count,
                        "dropped_events_count": span.dropped_events_count,
                        "dropped_links_count": span.dropped_links_count,
                        "timestamp": end_time,
                    }
                )
    return out


# Encoded Status → the record's status dict. Nearly every span has one of a handful (unset, OK, ERROR with a
# few messages); records never modify nested values in place (collector/events.py), so they share these.
_STATUSES: dict[bytes, dict[str, Any]] = {}
_MAX_STATUSES = 1024


def _status(raw: bytes) -> dict[str, Any]:
    status = _STATUSES.get(raw)
    if status is None:
        message = Status.FromString(raw)
        status = {"code": message.code, "message": message.message}
        if len(_STATUSES) >= _MAX_STATUSES:
            _STATUSES.clear()
        _STATUSES[raw] = status
    return status


def _event(event: Any) -> dict[str, Any]:
    return {
        "name": event.name,
        "time_unix_nano": event.time_unix_nano,
        "attributes": attributes(event.attributes),
        "dropped_attributes_count": event.dropped_attributes_count,
    }


def _link(link: Any) -> dict[str, Any]:
    return {
        "trace_id": link.trace_id.hex(),
        "span_id": link.span_id.hex(),
        "trace_state": link.trace_state,
        "attributes": attributes(link.attributes),
        "flags": link.flags,
    }


# -- the inverse ---------------------------------------------------------------------------------------------


def _key(value: Any) -> Any:
    """A hashable identity of a JSON-like value (to group spans by resource and scope)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_key(v) for v in value)
    return value


def _nanos(record: dict[str, Any], exact: str, seconds: str) -> int:
    value = record.get(exact)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    value = record.get(seconds)
    return round(value * _NANOS) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def request_from_spans(records: Iterable[dict[str, Any]]) -> ExportTraceServiceRequest:
    """Span records (this module's shape) back into one request, spans grouped by resource and scope.

    The exact `*_unix_nano` times are used when present, else the float seconds. Missing fields take the
    proto defaults, so a record built by `spans_from_request` comes back as the span it was.
    """
    request = ExportTraceServiceRequest()
    resources: dict[Any, Any] = {}
    scopes: dict[Any, Any] = {}
    for record in records:
        resource = record.get("resource") or {}
        resource_key = _key(resource)
        resource_spans = resources.get(resource_key)
        if resource_spans is None:
            resource_spans = resources[resource_key] = request.resource_spans.add()
            set_attributes(resource_spans.resource.attributes, resource)
        scope = record.get("scope") or {}
        scope_key = (resource_key, _key(scope))
        scope_spans = scopes.get(scope_key)
        if scope_spans is None:
            scope_spans = scopes[scope_key] = resource_spans.scope_spans.add()
            scope_spans.scope.name = scope.get("name") or ""
            scope_spans.scope.version = scope.get("version") or ""
            set_attributes(scope_spans.scope.attributes, scope.get("attributes"))
        span = scope_spans.spans.add()
        span.trace_id = id_bytes(record.get("trace_id"), 16)
        span.span_id = id_bytes(record.get("span_id"), 8)
        span.parent_span_id = id_bytes(record.get("parent_span_id"), 8)
        span.trace_state = record.get("trace_state") or ""
        span.flags = record.get("flags") or 0
        span.name = record.get("name") or ""
        span.kind = KIND_NUMBERS.get(record.get("kind") or "unspecified", 0)  # type: ignore[assignment]
        span.start_time_unix_nano = _nanos(record, "start_time_unix_nano", "start_time")
        span.end_time_unix_nano = _nanos(record, "end_time_unix_nano", "end_time")
        set_attributes(span.attributes, record.get("attributes"))
        for event in record.get("events") or ():
            out = span.events.add()
            out.name = event.get("name") or ""
            out.time_unix_nano = event.get("time_unix_nano") or 0
            set_attributes(out.attributes, event.get("attributes"))
            out.dropped_attributes_count = event.get("dropped_attributes_count") or 0
        for link in record.get("links") or ():
            out_link = span.links.add()
            out_link.trace_id = id_bytes(link.get("trace_id"), 16)
            out_link.span_id = id_bytes(link.get("span_id"), 8)
            out_link.trace_state = link.get("trace_state") or ""
            set_attributes(out_link.attributes, link.get("attributes"))
            out_link.flags = link.get("flags") or 0
        status = record.get("status") or {}
        span.status.code = status.get("code") or 0
        span.status.message = status.get("message") or ""
        span.dropped_attributes_count = record.get("dropped_attributes_count") or 0
        span.dropped_events_count = record.get("dropped_events_count") or 0
        span.dropped_links_count = record.get("dropped_links_count") or 0
    return request
