"""Receive-side views of OTLP trace and log requests: the same wire format, the costly fields left as bytes.

    view = TRACES_VIEW.FromString(body)        # parses any ExportTraceServiceRequest body
    view = as_traces_view(request)             # an ExportTraceServiceRequest (or a view) as a view

Why. In Python, reading a protobuf field costs about 100-175 ns per access (upb creates a wrapper object for
every sub-message it hands out); a span with six attributes needs some 40 accesses, which alone caps the
receiver below 100 k spans/s on a core. Attribute lists repeat heavily across spans (method, route, host,
status code, user agent...), so the views declare `Span.attributes` and `LogRecord.attributes` (and the rarely
set `events`, `links` and `status`) as `bytes` fields: the parser hands out each `KeyValue` as its encoded
bytes, and values.py decodes each distinct one once and remembers it (a bounded cache).

How. Each view is built at import from the descriptor opentelemetry-proto itself ships (`trace.proto`,
`logs.proto`), copied under the package `collector.otlp_view.*` with only those fields' types changed from
message to bytes. Message and bytes fields share the length-delimited wire type, so every body that parses as
the real request parses as the view, field for field; `TracesData` / `LogsData` have the same single field
(`resource_*` = 1) as the Export*ServiceRequest messages, so they are the request views. No field number or
type is written here by hand (tests/plugins/test_otlp_views.py checks the views against the real messages).
What the bytes fields defer is validation: a `KeyValue` that does not decode (bad UTF-8 in a key) is found
when its span or log record is converted, and rejects only that item instead of the whole request.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

_BYTES = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
_MESSAGE = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE

# Per real file: the message (unqualified) and its message-typed fields the view keeps as bytes.
RAW_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    trace_pb2.DESCRIPTOR.name: {"Span": ("attributes", "events", "links", "status")},
    logs_pb2.DESCRIPTOR.name: {"LogRecord": ("attributes",)},
}


def _view_file(real: Any, package: str) -> descriptor_pb2.FileDescriptorProto:
    """A copy of `real` (a FileDescriptor) under `package`, with RAW_FIELDS turned into bytes fields."""
    proto = descriptor_pb2.FileDescriptorProto()
    real.CopyToProto(proto)
    old_prefix = f".{proto.package}."
    proto.name = f"collector/otlp_view/{proto.name}"
    proto.package = package
    raw = RAW_FIELDS[real.name]

    def rewrite(message: descriptor_pb2.DescriptorProto) -> None:
        for field in message.field:
            if field.name in raw.get(message.name, ()):
                if field.type != _MESSAGE:
                    raise TypeError(f"{message.name}.{field.name} is not a message field")
                field.type = _BYTES
                field.ClearField("type_name")
            elif field.type_name.startswith(old_prefix):  # a type of this file: the view's copy of it
                field.type_name = f".{package}.{field.type_name[len(old_prefix) :]}"
        for nested in message.nested_type:
            rewrite(nested)

    for message in proto.message_type:
        rewrite(message)
    return proto


def _view_class(real: Any, package: str, request: str) -> type[Message]:
    pool = descriptor_pool.Default()
    pool.Add(_view_file(real, package))
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{request}"))


# Wire-compatible with ExportTraceServiceRequest / ExportLogsServiceRequest (field 1: resource_spans / _logs).
TRACES_VIEW = _view_class(trace_pb2.DESCRIPTOR, "collector.otlp_view.trace", "TracesData")
LOGS_VIEW = _view_class(logs_pb2.DESCRIPTOR, "collector.otlp_view.logs", "LogsData")
VIEWS: dict[type[Message], type[Message]] = {
    ExportTraceServiceRequest: TRACES_VIEW,
    ExportLogsServiceRequest: LOGS_VIEW,
}


def as_view(request: Message, view: type[Message]) -> Any:
    """`request` as a `view` message (itself when it is one already; else re-read from its encoding)."""
    if isinstance(request, view):
        return request
    return view.FromString(request.SerializeToString())


def as_traces_view(request: Message) -> Any:
    return as_view(request, TRACES_VIEW)


def as_logs_view(request: Message) -> Any:
    return as_view(request, LOGS_VIEW)
