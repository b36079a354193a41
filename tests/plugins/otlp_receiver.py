"""A test OTLP receiver that follows the published API: OTLP/HTTP (aiohttp) and OTLP/gRPC (the generated servicers).

Each request is decoded with opentelemetry-proto's own messages and kept (`requests[signal]`); what the server
answers is decided per call by `plan(signal, call_number, request) -> Reply`: success (optionally with a
partial_success), an HTTP status with headers and a `google.rpc.Status` body, or a gRPC status code (with a
`RetryInfo` detail when `retry_delay` is set), the way the specification describes each.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from collector.testing import free_port

MESSAGES: dict[str, tuple[Any, Any, str]] = {
    "traces": (
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        "rejected_spans",
    ),
    "logs": (
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        "rejected_log_records",
    ),
    "metrics": (
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        "rejected_data_points",
    ),
}


@dataclass
class Reply:
    http_status: int = 200
    grpc_code: grpc.StatusCode = grpc.StatusCode.OK
    rejected: int = 0
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    retry_delay: float | None = None  # gRPC: a RetryInfo detail


OK = Reply()
Plan = Callable[[str, int, Any], Reply]


def items(signal: str, request: Any) -> list[Any]:
    """The spans / log records / metrics of a request, in order."""
    if signal == "traces":
        return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    if signal == "logs":
        return [r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records]
    return [m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


class OtlpReceiver:
    def __init__(self, plan: Plan | None = None, accept_only_valid: bool = True) -> None:
        self.plan = plan or (lambda signal, call, request: OK)
        self.requests: dict[str, list[Any]] = {"traces": [], "logs": [], "metrics": []}
        self.headers: list[dict[str, str]] = []  # HTTP headers, or gRPC metadata, per call
        self.bodies: list[bytes] = []  # HTTP bodies (aiohttp's server inflates gzip: see Content-Length)
        self.calls = 0
        self.http_port = 0
        self.grpc_port = 0
        self._runner: web.AppRunner | None = None
        self._grpc: Any = None

    # what was accepted (answered with success), decoded
    def accepted(self, signal: str) -> list[Any]:
        return [item for request in self.requests[signal] for item in items(signal, request)]

    def _answer(self, signal: str, request: Any) -> Reply:
        call = self.calls
        self.calls += 1
        reply = self.plan(signal, call, request)
        if reply.http_status == 200 and reply.grpc_code == grpc.StatusCode.OK:
            self.requests[signal].append(request)
        return reply

    # -- HTTP ------------------------------------------------------------------------------------------

    async def start_http(self, ssl_context: Any = None) -> str:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        for signal in MESSAGES:
            app.router.add_post(f"/v1/{signal}", self._http_handler(signal))
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.http_port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.http_port, ssl_context=ssl_context).start()
        scheme = "https" if ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    def _http_handler(self, signal: str) -> Any:
        request_cls, response_cls, field_name = MESSAGES[signal]

        async def handle(http: web.Request) -> web.Response:
            body = await http.read()
            self.bodies.append(body)
            self.headers.append(dict(http.headers))
            if http.headers.get("Content-Type") != "application/x-protobuf":
                return _status_response(415, "only application/x-protobuf here")
            if http.headers.get("Content-Encoding") == "gzip" and body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)  # aiohttp's server usually inflates it already
            try:
                request = request_cls.FromString(body)
            except Exception:
                return _status_response(400, "not a protobuf export request")
            reply = self._answer(signal, request)
            if reply.http_status != 200:
                return _status_response(reply.http_status, reply.message, reply.headers)
            response = response_cls()
            if reply.rejected:
                setattr(response.partial_success, field_name, reply.rejected)
                response.partial_success.error_message = reply.message
            return web.Response(
                body=response.SerializeToString(), content_type="application/x-protobuf", headers=reply.headers
            )

        return handle

    # -- gRPC ------------------------------------------------------------------------------------------

    async def start_grpc(self, credentials: Any = None) -> str:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 4 * 1024 * 1024)])
        receiver = self

        def servicer(base: Any, signal: str) -> Any:
            _, response_cls, field_name = MESSAGES[signal]

            class Servicer(base):  # type: ignore[misc, valid-type]
                async def Export(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
                    receiver.headers.append({k: v for k, v in context.invocation_metadata() or ()})
                    reply = receiver._answer(signal, request)
                    if reply.grpc_code != grpc.StatusCode.OK:
                        trailing: tuple[tuple[str, Any], ...] = ()
                        if reply.retry_delay is not None:
                            trailing = (("grpc-status-details-bin", _retry_info(reply)),)
                        await context.abort(reply.grpc_code, reply.message, trailing_metadata=trailing)
                    response = response_cls()
                    if reply.rejected:
                        setattr(response.partial_success, field_name, reply.rejected)
                        response.partial_success.error_message = reply.message
                    return response

            return Servicer()

        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            servicer(trace_service_pb2_grpc.TraceServiceServicer, "traces"), server
        )
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            servicer(logs_service_pb2_grpc.LogsServiceServicer, "logs"), server
        )
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            servicer(metrics_service_pb2_grpc.MetricsServiceServicer, "metrics"), server
        )
        self.grpc_port = free_port()
        address = f"127.0.0.1:{self.grpc_port}"
        if credentials is None:
            server.add_insecure_port(address)
        else:
            server.add_secure_port(address, credentials)
        await server.start()
        self._grpc = server
        return f"{'https' if credentials else 'http'}://{address}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._grpc is not None:
            await self._grpc.stop(None)
            self._grpc = None


def _retry_info(reply: Reply) -> bytes:
    delay = reply.retry_delay or 0.0
    info = RetryInfo(retry_delay=Duration(seconds=int(delay), nanos=int((delay % 1) * 1e9)))
    detail = AnyProto()
    detail.Pack(info)
    status = Status(code=reply.grpc_code.value[0], message=reply.message, details=[detail])
    return status.SerializeToString()


def _status_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = Status(code=0, message=message).SerializeToString()
    return web.Response(status=status, body=body, content_type="application/x-protobuf", headers=headers or {})


class ThreadedReceiver:
    """An `OtlpReceiver` on its own event loop in a thread, started and stopped from synchronous code."""

    def __init__(self, plan: Plan | None = None) -> None:
        import asyncio
        import threading

        self.receiver = OtlpReceiver(plan)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="otlp-receiver", daemon=True)

    def start(self, protocol: str) -> str:
        import asyncio

        self.thread.start()
        start = self.receiver.start_http() if protocol == "http" else self.receiver.start_grpc()
        return asyncio.run_coroutine_threadsafe(start, self.loop).result(timeout=10)

    def stop(self) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
