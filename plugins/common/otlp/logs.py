"""OTLP logs → log records (signal kind "logs"), per the OTLP record contract.

    conversion = logs_from_request(request, received=time.time())

One record per LogRecord, a plain dict:

    {"message": body,          # the string when the body is a string, else the AnyValue as a value (values.py)
     "timestamp": float s,     # time_unix_nano, else observed_time_unix_nano, else `received`
     "time_unix_nano": int, "observed_time_unix_nano": int,
     "severity_text": str, "severity_number": int,
     "trace_id": "<32 hex>", "span_id": "<16 hex>",   # only when present: 16 / 8 non-zero bytes
     "attributes": {...}, "resource": {...}, "scope": {"name", "version", "attributes"},
     "flags": int, "dropped_attributes_count": int, "event_name": str (only when set), "format": "otlp"}

`trace_id` and `span_id` sit at the top level like those the `trace_context` processor extracts, so the
`trace_index` output and `collector trace` correlate OTLP logs with spans and X-Ray segments. An id of another
length is dropped from the record (the record is kept: a log line is worth more than a broken id). The
records of one resource and scope share one `resource` and one `scope` dict.

Every field of a LogRecord is optional, so a log record is rejected only when its attributes do not decode
(bad UTF-8 in a key or string: the receive view defers that validation, views.py), and then alone.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError

from collector_plugins.common.otlp.conversion import Conversion
from collector_plugins.common.otlp.traces import scope_dict
from collector_plugins.common.otlp.values import any_value, attributes, raw_attributes
from collector_plugins.common.otlp.views import as_logs_view

_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_NANOS = 1e9


def logs_from_request(request: Any, received: float) -> Conversion:
    """Every log record of the request as a record; `received` (epoch seconds) times those without a time.

    `request` is an ExportLogsServiceRequest or its receive view (views.py, what the `otlp` input decodes).
    """
    out = Conversion()
    append = out.records.append
    for resource_logs in as_logs_view(request).resource_logs:
        resource = attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            scope = scope_dict(scope_logs.scope)
            for log in scope_logs.log_records:
                try:
                    log_attributes = raw_attributes(log.attributes)
                except DecodeError:
                    out.reject(1, "a log record's attributes do not decode (invalid UTF-8?)")
                    continue
                body = log.body
                message: Any = body.string_value  # the common case: one access instead of two
                if not message:
                    message = "" if body.WhichOneof("value") in (None, "string_value") else any_value(body)
                time_ns = log.time_unix_nano
                observed_ns = log.observed_time_unix_nano
                record = {
                    "message": message,
                    "timestamp": (time_ns or observed_ns) / _NANOS if time_ns or observed_ns else received,
                    "time_unix_nano": time_ns,
                    "observed_time_unix_nano": observed_ns,
                    "severity_text": log.severity_text,
                    "severity_number": log.severity_number,
                    "attributes": log_attributes,
                    "resource": resource,
                    "scope": scope,
                    "flags": log.flags,
                    "dropped_attributes_count": log.dropped_attributes_count,
                    "format": "otlp",
                }
                trace_id = log.trace_id
                if len(trace_id) == 16 and trace_id != _ZERO_TRACE:
                    record["trace_id"] = trace_id.hex()
                span_id = log.span_id
                if len(span_id) == 8 and span_id != _ZERO_SPAN:
                    record["span_id"] = span_id.hex()
                event_name = log.event_name
                if event_name:
                    record["event_name"] = event_name
                append(record)
    return out
