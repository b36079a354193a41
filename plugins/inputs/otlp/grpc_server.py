"""OTLP/gRPC (grpc.aio): TraceService, MetricsService and LogsService `Export`, gzip or not.

The three services are registered under the names of the generated service descriptors
(`opentelemetry.proto.collector.*.v1.*_service_pb2`) with the generated request and response messages. The
one thing done by hand is the request deserializer: it keeps a body that does not parse (instead of letting
grpc answer UNKNOWN, which tells the client nothing), so that it is answered INVALID_ARGUMENT and counted.

Answers, per the OTLP/gRPC spec:

- OK with an `Export*ServiceResponse` (`partial_success` only when items were rejected), once durable.
- INVALID_ARGUMENT: the message does not parse. Not retryable.
- RESOURCE_EXHAUSTED (grpc's own, without RetryInfo, so clients do not retry): a message over
  `max_decompressed_bytes` after decompression (grpc checks the bound while inflating: no gzip bomb).
- UNAVAILABLE with a `google.rpc.RetryInfo` in the status details (`grpc-status-details-bin`): busy, the
  pipeline is full, not durable within `ack_timeout`, or the collector is stopping. Retryable.
- INTERNAL: a conversion bug of ours.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from collector.events import LOGS, METRICS, TRACES
from collector_plugins.common.otlp.views import VIEWS
from collector_plugins.inputs.otlp.http_server import response_message
from collector_plugins.inputs.otlp.receiver import OK, RETRY, Answer, Receiver

if TYPE_CHECKING:
    from collector_plugins.inputs.otlp.input import Otlp

SERVICES: dict[str, tuple[Any, str, Any]] = {
    TRACES: (trace_service_pb2, "TraceService", trace_service_pb2.ExportTraceServiceRequest),
    METRICS: (metrics_service_pb2, "MetricsService", metrics_service_pb2.ExportMetricsServiceRequest),
    LOGS: (logs_service_pb2, "LogsService", logs_service_pb2.ExportLogsServiceRequest),
}
# Concurrent streams per HTTP/2 connection: with max_decompressed_bytes, what one connection may hold.
MAX_STREAMS_PER_CONNECTION = 100


class _Invalid:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def retry_details(message: str, delay: float) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata carrying a google.rpc.Status UNAVAILABLE with RetryInfo(delay)."""
    seconds = int(delay)
    info = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=seconds, nanos=int((delay - seconds) * 1e9)))
    detail = AnyMessage()
    detail.Pack(info)
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    return (("grpc-status-details-bin", status.SerializeToString()),)


class GrpcServer:
    """The OTLP/gRPC endpoint of one `otlp` input: bound in `bind()`, serving from `start()`."""

    def __init__(self, owner: Otlp, address: str, signals: Collection[str]) -> None:
        self.owner = owner
        self.receiver: Receiver | None = None
        limit = owner.config.max_decompressed_bytes
        self.server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                ("grpc.max_concurrent_streams", MAX_STREAMS_PER_CONNECTION),
                ("grpc.so_reuseport", 0),
            ]
        )
        handlers = []
        for kind, (module, name, request_cls) in SERVICES.items():
            if kind not in signals:
                continue  # not registered: clients get UNIMPLEMENTED
            full_name = module.DESCRIPTOR.services_by_name[name].full_name
            method = grpc.unary_unary_rpc_method_handler(
                self._exporter(kind),
                request_deserializer=_deserializer(request_cls),
                response_serializer=_serialize,
            )
            handlers.append(grpc.method_handlers_generic_handler(full_name, {"Export": method}))
        self.server.add_generic_rpc_handlers(tuple(handlers))
        try:
            port = self.server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from None
        if not port:
            raise OSError(f"cannot listen on {address}")
        self.port = port

    async def start(self, receiver: Receiver) -> None:
        self.receiver = receiver
        await self.server.start()

    async def stop(self, grace: float | None) -> None:
        await self.server.stop(grace)

    def _exporter(self, kind: str) -> Any:
        owner = self.owner

        async def export(request: tuple[Any, int], context: grpc.aio.ServicerContext) -> Any:
            message, size = request
            owner.grpc_requests += 1
            if isinstance(message, _Invalid):
                owner.invalid_requests += 1
                owner.warn("invalid", "invalid OTLP/gRPC requests refused", signal=kind, error=message.reason[:200])
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message.reason[:1000])
            receiver = self.receiver
            assert receiver is not None
            refused = receiver.admit(size)
            if refused is not None:
                await self._abort(context, refused)
            try:
                answer = await receiver.export(kind, message, size)
            finally:
                receiver.release_bytes(size)
                receiver.done()
            if answer.status == OK:
                return response_message(kind, answer)
            await self._abort(context, answer)

        return export

    @staticmethod
    async def _abort(context: grpc.aio.ServicerContext, answer: Answer) -> None:
        if answer.status == RETRY:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                answer.message,
                trailing_metadata=retry_details(answer.message, answer.retry_after),
            )
        await context.abort(grpc.StatusCode.INTERNAL, answer.message)


def _deserializer(request_cls: Any) -> Any:
    message_cls = VIEWS.get(request_cls, request_cls)  # traces and logs: their receive views (faster to read)

    def deserialize(data: bytes) -> tuple[Any, int]:
        message = message_cls()
        try:
            message.ParseFromString(data)
        except (DecodeError, RecursionError, ValueError) as exc:
            return _Invalid(f"the message is not a valid {request_cls.__name__}: {exc}"), len(data)
        return message, len(data)

    return deserialize


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())
