"""Records → OTLP export requests (traces and logs; metrics in encode_metrics.py), for the `otlp` output.

    encoded = encode_spans(records)        # Encoded(request, kept, rejected)
    encoded = encode_logs(records)

The inverse of the otlp input's conversion (docs: the OTLP record contract): items are grouped by resource and
scope in the order they first appear, so `decode(encode(records)) == records` for records that came from OTLP.

- A span record (`format: otlp`) becomes a Span with every contract field. An X-Ray segment (what the `xray`
  input emits: `trace_id` `1-xxxxxxxx-yyyy...`, `id`, `start_time`, ...) becomes a Span too, with its
  subsegments as child spans (the reverse of the X-Ray exporter's ID mapping: the trace ID's two parts joined),
  so X-Ray SDK traffic can be forwarded to an OTLP backend. Anything else is rejected (the caller dead-letters
  it with the reason).
- A log record (`format: otlp`) becomes a LogRecord with every contract field; any other log record (a file
  line: `message` and fields) becomes a LogRecord with body = message, time = timestamp and the other fields
  as attributes.

Values map to AnyValue by Python type: str, bool, int (beyond int64: a string), float, bytes, list, dict, None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

NANOS = 1_000_000_000
_INT64 = (-(2**63), 2**63 - 1)
SPAN_KINDS = {"unspecified": 0, "internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
# Log record keys that are OTLP fields, not attributes (a non-OTLP record's other keys become attributes).
_LOG_FIELDS = frozenset({"message", "timestamp"})


class NotEncodable(ValueError):
    """A record the OTLP encoding cannot carry; the message is the dead-letter reason."""


@dataclass
class Encoded:
    """One export request and which records it holds: `kept` indexes into the input, `rejected` (index, reason)."""

    request: Any
    kept: list[int] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    # The messages (Span / LogRecord / Metric) each kept record became, in `kept` order.
    items: list[Any] = field(default_factory=list)

    @property
    def sizes(self) -> list[int]:
        """Each kept record's encoded size, its items' framing included (computed on demand: it costs)."""
        return [
            sum(m.ByteSize() + 4 for m in item) if isinstance(item, list) else item.ByteSize() + 4
            for item in self.items
        ]


# -- values ---------------------------------------------------------------------------------------


def any_value(value: Any, out: AnyValue) -> None:
    """Set `out` to `value` (an attribute or body value of the record contract)."""
    if isinstance(value, str):
        out.string_value = value
    elif value is True or value is False:
        out.bool_value = value
    elif isinstance(value, int):
        if _INT64[0] <= value <= _INT64[1]:
            out.int_value = value
        else:
            out.string_value = str(value)
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        out.bytes_value = bytes(value)
    elif isinstance(value, (list, tuple)):
        values = out.array_value.values
        for item in value:
            any_value(item, values.add())
        if not value:
            out.array_value.SetInParent()
    elif isinstance(value, Mapping):
        set_attributes(out.kvlist_value.values, value)
        if not value:
            out.kvlist_value.SetInParent()
    elif value is None:
        pass  # an empty AnyValue
    else:
        out.string_value = str(value)


def set_attributes(target: Any, attrs: Mapping[str, Any]) -> None:
    """Append `attrs` to a repeated KeyValue field."""
    add = target.add
    for key, value in attrs.items():
        kv: KeyValue = add(key=key if type(key) is str else str(key))
        if type(value) is str:  # the common case, without the dispatch
            kv.value.string_value = value
        else:
            any_value(value, kv.value)


def _hex_id(value: Any, length: int, what: str) -> bytes:
    if not value:
        return b""
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        try:
            raw = bytes.fromhex(str(value))
        except ValueError:
            raise NotEncodable(f"{what} {value!r} is not hexadecimal") from None
    if len(raw) != length:
        raise NotEncodable(f"{what} {value!r} is not {length} bytes")
    return raw


def _nanos(record: Mapping[str, Any], exact: str, seconds: str) -> int:
    value = record.get(exact)
    if isinstance(value, int) and value >= 0:
        return value
    secs = record.get(seconds)
    if isinstance(secs, (int, float)) and secs > 0:
        return seconds_to_nanos(secs)
    return 0


def seconds_to_nanos(secs: float) -> int:
    """Epoch seconds as nanoseconds without the float product's error (1.25 s is 1_250_000_000 ns, exactly)."""
    whole = int(secs)
    return whole * NANOS + round((secs - whole) * NANOS)


def _freeze(value: Any) -> Any:
    """A hashable identity of a resource or scope (grouping key)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=repr)
    except TypeError:  # integers beyond 64 bits and the like: still an identity
        return repr(value)


def _scope_parts(scope: Any) -> tuple[str, str, Mapping[str, Any]]:
    if not isinstance(scope, Mapping):
        return "", "", {}
    return str(scope.get("name") or ""), str(scope.get("version") or ""), scope.get("attributes") or {}


class _Grouper:
    """Resource → scope → items, in first-seen order: the `Resource*` / `Scope*` messages of one request."""

    def __init__(self, add_resource: Callable[[], Any], items_field: str, scopes_field: str) -> None:
        self.add_resource = add_resource
        self.items_field = items_field
        self.scopes_field = scopes_field
        self.resources: dict[Any, tuple[Any, dict[Any, Any]]] = {}
        # The last (resource, scope) objects and their items: records of one export share these very dicts
        # (the otlp input's contract), so consecutive records skip the grouping keys. Holding the objects keeps
        # their ids from being reused while this request is built.
        self._last: tuple[Any, Any, Any] | None = None

    def items(self, resource: Any, scope: Any) -> Any:
        last = self._last
        if last is not None and last[0] is resource and last[1] is scope and resource is not None:
            return last[2]
        items = self._items(resource, scope)
        self._last = (resource, scope, items)
        return items

    def _items(self, resource: Any, scope: Any) -> Any:
        r_key = _freeze(resource) if resource else b""
        entry = self.resources.get(r_key)
        if entry is None:
            message = self.add_resource()
            if isinstance(resource, Mapping) and resource:
                set_attributes(message.resource.attributes, resource)
            entry = self.resources[r_key] = (message, {})
        message, scopes = entry
        s_key = _freeze(scope) if scope else b""
        items = scopes.get(s_key)
        if items is None:
            scope_message = getattr(message, self.scopes_field).add()
            name, version, attrs = _scope_parts(scope)
            if name or version or attrs:
                _set_scope(scope_message.scope, name, version, attrs)
            items = scopes[s_key] = getattr(scope_message, self.items_field)
        return items


def _set_scope(scope: InstrumentationScope, name: str, version: str, attrs: Mapping[str, Any]) -> None:
    scope.name = name
    scope.version = version
    set_attributes(scope.attributes, attrs)


# -- traces ---------------------------------------------------------------------------------------


def encode_spans(records: Iterable[Any]) -> Encoded:
    """An ExportTraceServiceRequest for span records (OTLP-shaped, or X-Ray segment documents)."""
    request = ExportTraceServiceRequest()
    grouper = _Grouper(request.resource_spans.add, "spans", "scope_spans")
    out = Encoded(request)
    for index, record in enumerate(records):
        try:
            if not isinstance(record, Mapping):
                raise NotEncodable(f"a traces record must be a mapping, not {type(record).__name__}")
            if record.get("format") == "otlp":
                spans = grouper.items(record.get("resource"), record.get("scope"))
                item: Any = _span(record, spans)
            elif "id" in record and str(record.get("trace_id", "")).startswith("1-"):
                item = xray_spans(record)
                spans = grouper.items(_xray_resource(record), {"name": "xray"})
                spans.extend(item)
                item = list(spans[len(spans) - len(item) :])
            else:
                raise NotEncodable("not an OTLP span or X-Ray segment (no `format: otlp`, no X-Ray trace_id)")
        except NotEncodable as exc:
            out.rejected.append((index, str(exc)))
            continue
        out.kept.append(index)
        out.items.append(item)
    return out


def _span(record: Mapping[str, Any], spans: Any) -> Span:
    """Add the span of `record` to the repeated field `spans` (built in place: no copy)."""
    trace_id = _hex_id(record.get("trace_id"), 16, "trace_id")
    span_id = _hex_id(record.get("span_id"), 8, "span_id")
    if not trace_id or not span_id:
        raise NotEncodable("a span without trace_id or span_id")
    parent = _hex_id(record.get("parent_span_id"), 8, "parent_span_id")
    span = spans.add(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        trace_state=str(record.get("trace_state") or ""),
        flags=int(record.get("flags") or 0),
        name=str(record.get("name") or ""),
        kind=SPAN_KINDS.get(str(record.get("kind") or "unspecified"), 0),  # type: ignore[arg-type]
        start_time_unix_nano=_nanos(record, "start_time_unix_nano", "start_time"),
        end_time_unix_nano=_nanos(record, "end_time_unix_nano", "end_time"),
        dropped_attributes_count=int(record.get("dropped_attributes_count") or 0),
        dropped_events_count=int(record.get("dropped_events_count") or 0),
        dropped_links_count=int(record.get("dropped_links_count") or 0),
    )
    try:
        _span_parts(record, span)
    except NotEncodable:
        del spans[len(spans) - 1]
        raise
    return span


def _span_parts(record: Mapping[str, Any], span: Span) -> None:
    set_attributes(span.attributes, record.get("attributes") or {})
    for event in record.get("events") or ():
        ev = span.events.add()
        ev.name = str(event.get("name") or "")
        ev.time_unix_nano = int(event.get("time_unix_nano") or 0)
        ev.dropped_attributes_count = int(event.get("dropped_attributes_count") or 0)
        set_attributes(ev.attributes, event.get("attributes") or {})
    for link in record.get("links") or ():
        ln = span.links.add()
        ln.trace_id = _hex_id(link.get("trace_id"), 16, "link trace_id")
        ln.span_id = _hex_id(link.get("span_id"), 8, "link span_id")
        ln.trace_state = str(link.get("trace_state") or "")
        ln.flags = int(link.get("flags") or 0)
        ln.dropped_attributes_count = int(link.get("dropped_attributes_count") or 0)
        set_attributes(ln.attributes, link.get("attributes") or {})
    status = record.get("status")
    if isinstance(status, Mapping) and (status.get("code") or status.get("message")):
        span.status.code = int(status.get("code") or 0)  # type: ignore[assignment]
        span.status.message = str(status.get("message") or "")


# -- X-Ray segments -------------------------------------------------------------------------------


def xray_trace_id(trace_id: str) -> bytes:
    """`1-5759e988-bd862e3fe1be46a994272793` → the 16 bytes 5759e988bd86... (the X-Ray exporter's mapping)."""
    parts = trace_id.split("-")
    if len(parts) != 3 or len(parts[1]) != 8 or len(parts[2]) != 24:
        raise NotEncodable(f"X-Ray trace_id {trace_id!r} is not 1-<8 hex>-<24 hex>")
    return _hex_id(parts[1] + parts[2], 16, "trace_id")


def _xray_resource(segment: Mapping[str, Any]) -> dict[str, Any]:
    resource: dict[str, Any] = {"service.name": str(segment.get("name") or "")}
    origin = segment.get("origin")
    if origin:
        resource["cloud.platform"] = str(origin)
    return resource


def xray_spans(segment: Mapping[str, Any], parent: bytes = b"", trace_id: bytes = b"") -> list[Span]:
    """An X-Ray segment (or subsegment) document and its nested subsegments as spans (parents first)."""
    trace = trace_id or xray_trace_id(str(segment.get("trace_id") or ""))
    span_id = _hex_id(segment.get("id"), 8, "segment id")
    if not span_id:
        raise NotEncodable("an X-Ray segment without an id")
    start = segment.get("start_time")
    end = segment.get("end_time") or start
    if not isinstance(start, (int, float)):
        raise NotEncodable("an X-Ray segment without a numeric start_time")
    span = Span(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=parent or _hex_id(segment.get("parent_id"), 8, "parent_id"),
        name=str(segment.get("name") or ""),
        kind=2 if not parent and segment.get("type") != "subsegment" else 3 if segment.get("namespace") else 1,  # type: ignore[arg-type]
        start_time_unix_nano=seconds_to_nanos(start),
        end_time_unix_nano=seconds_to_nanos(float(end)),  # type: ignore[arg-type]
    )
    attrs: dict[str, Any] = {}
    for key, value in (segment.get("annotations") or {}).items():
        attrs[key] = value
    http = segment.get("http") or {}
    request, response = http.get("request") or {}, http.get("response") or {}
    for src, dst in (("method", "http.request.method"), ("url", "url.full"), ("client_ip", "client.address")):
        if request.get(src) is not None:
            attrs[dst] = request[src]
    if response.get("status") is not None:
        attrs["http.response.status_code"] = response["status"]
    if segment.get("metadata"):
        attrs["aws.xray.metadata"] = orjson.dumps(segment["metadata"], default=str).decode()
    set_attributes(span.attributes, attrs)
    if segment.get("fault") or segment.get("error"):
        span.status.code = Status.STATUS_CODE_ERROR
        span.status.message = "fault" if segment.get("fault") else "error"
    out = [span]
    for sub in segment.get("subsegments") or ():
        if isinstance(sub, Mapping):
            out.extend(xray_spans(sub, span_id, trace))
    return out


# -- logs -----------------------------------------------------------------------------------------


def encode_logs(records: Iterable[Any]) -> Encoded:
    """An ExportLogsServiceRequest for log records (OTLP-shaped, or any other log record)."""
    request = ExportLogsServiceRequest()
    grouper = _Grouper(request.resource_logs.add, "log_records", "scope_logs")
    out = Encoded(request)
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            out.rejected.append((index, f"a logs record must be a mapping, not {type(record).__name__}"))
            continue
        if record.get("format") == "otlp":
            log = _otlp_log(record, grouper.items(record.get("resource"), record.get("scope")))
        else:
            log = _plain_log(record, grouper.items(None, None))
        out.kept.append(index)
        out.items.append(log)
    return out


def _body(value: Any, log: LogRecord) -> None:
    if isinstance(value, (bytes, bytearray)):
        try:
            log.body.string_value = bytes(value).decode()
        except UnicodeDecodeError:
            log.body.bytes_value = bytes(value)
    elif value is not None:
        any_value(value, log.body)


def _otlp_log(record: Mapping[str, Any], logs: Any) -> LogRecord:
    log: LogRecord = logs.add(
        time_unix_nano=int(record.get("time_unix_nano") or 0),
        observed_time_unix_nano=int(record.get("observed_time_unix_nano") or 0),
        severity_number=int(record.get("severity_number") or 0),  # type: ignore[arg-type]
        severity_text=str(record.get("severity_text") or ""),
        flags=int(record.get("flags") or 0),
        dropped_attributes_count=int(record.get("dropped_attributes_count") or 0),
        event_name=str(record.get("event_name") or ""),
    )
    _body(record.get("message"), log)
    set_attributes(log.attributes, record.get("attributes") or {})
    _ids(record, log)
    return log


def _ids(record: Mapping[str, Any], log: LogRecord) -> None:
    # Invalid ids are left out (the record is kept), as the input does with ids of the wrong length.
    try:
        log.trace_id = _hex_id(record.get("trace_id"), 16, "trace_id")
        log.span_id = _hex_id(record.get("span_id"), 8, "span_id")
    except NotEncodable:
        log.trace_id = log.span_id = b""


def _plain_log(record: Mapping[str, Any], logs: Any) -> LogRecord:
    stamp = _nanos(record, "time_unix_nano", "timestamp")
    log: LogRecord = logs.add(time_unix_nano=stamp, observed_time_unix_nano=stamp)
    _body(record.get("message"), log)
    attrs = {k: v for k, v in record.items() if k not in _LOG_FIELDS}
    if "trace_id" in attrs and "span_id" in attrs:
        _ids(record, log)
        if log.trace_id:
            del attrs["trace_id"], attrs["span_id"]
    set_attributes(log.attributes, attrs)
    return log
