"""OTLP/HTTP (aiohttp): POST /v1/traces, /v1/metrics, /v1/logs in protobuf or JSON, gzip or not.

Answers, per the OTLP/HTTP spec:

- 200 with an `Export*ServiceResponse` in the request's encoding (`partial_success` set only when items were
  rejected), once the data is durable (receiver.py).
- 400 with a `google.rpc.Status` body: the body does not decode (corrupt gzip, bad protobuf or JSON).
- 413: the body is over `max_request_bytes`, or expands past `max_decompressed_bytes` (read no further).
- 415: a Content-Type other than `application/x-protobuf` / `application/json`, or a Content-Encoding other
  than `gzip` / `identity`.
- 503 with `Retry-After` (and a Status body): busy, the pipeline is full, the data is not durable in time, or
  the collector is stopping. The client retries these; never for the answers above.
- 500: a conversion bug of ours (not retryable: the same request would fail again).
- 404 for another path, 405 for another method (aiohttp's own answers).

The body is read in pieces and counted against `max_request_bytes` before it is held whole; a declared
Content-Length over the bound is refused before anything is read.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from aiohttp import web
from google.rpc import code_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from collector.accepting import HTTP_SHUTDOWN_TIMEOUT, stop_site
from collector.events import LOGS, METRICS, TRACES
from collector_plugins.common.listening.addresses import LISTEN_BACKLOG
from collector_plugins.inputs.otlp.decoding import (
    MEDIA_TYPES,
    InvalidBody,
    TooLarge,
    decode_body,
    encode_message,
    media_type,
)
from collector_plugins.inputs.otlp.receiver import OK, RETRY, Answer, Receiver

if TYPE_CHECKING:
    from collector_plugins.inputs.otlp.input import Otlp

PATHS = {"/v1/traces": TRACES, "/v1/metrics": METRICS, "/v1/logs": LOGS}
REQUESTS: dict[str, Any] = {
    TRACES: ExportTraceServiceRequest,
    METRICS: ExportMetricsServiceRequest,
    LOGS: ExportLogsServiceRequest,
}
RESPONSES: dict[str, Any] = {
    TRACES: (ExportTraceServiceResponse, "rejected_spans"),
    METRICS: (ExportMetricsServiceResponse, "rejected_data_points"),
    LOGS: (ExportLogsServiceResponse, "rejected_log_records"),
}
READ_CHUNK = 256 * 1024


def response_message(kind: str, answer: Answer) -> Any:
    """The Export*ServiceResponse for an OK answer: `partial_success` only when something was rejected."""
    cls, field = RESPONSES[kind]
    response = cls()
    if answer.rejected or answer.message:
        partial = response.partial_success
        setattr(partial, field, answer.rejected)
        partial.error_message = answer.message
    return response


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (bound now, so that a taken port fails the input's start)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """The OTLP/HTTP endpoint of one `otlp` input."""

    def __init__(self, owner: Otlp, sock: socket.socket, signals: Collection[str]) -> None:
        self.owner = owner
        self.sock = sock
        self.receiver: Receiver | None = None
        self.paths = [path for path, kind in PATHS.items() if kind in signals]
        self._runner: web.AppRunner | None = None
        config = owner.config
        self.max_request = config.max_request_bytes
        self.max_decompressed = config.max_decompressed_bytes

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def start(self, receiver: Receiver) -> None:
        self.receiver = receiver
        # client_max_size is not what bounds bodies (the handler reads within max_request_bytes itself).
        app = web.Application(client_max_size=self.max_request + 1)
        for path in self.paths:  # a signal not served: 404
            app.router.add_post(path, self._handle)
        # auto_decompress off: aiohttp would inflate gzip bodies without a bound; gunzip() keeps one.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT, auto_decompress=False
        )
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock, backlog=LISTEN_BACKLOG).start()  # not aiohttp's default (128)

    async def stop(self) -> None:
        if self._runner is not None:
            await stop_site(self._runner, [self.sock])
            self._runner = None

    def close(self) -> None:
        self.sock.close()

    async def _handle(self, request: web.Request) -> web.Response:
        owner = self.owner
        kind = PATHS[request.path]
        owner.http_requests += 1
        encoding = media_type(request.headers.get("Content-Type", ""))
        if encoding is None:
            owner.unsupported_requests += 1
            return web.Response(status=415, text="Content-Type must be application/x-protobuf or application/json")
        content_encoding = request.headers.get("Content-Encoding", "").strip().lower()
        if content_encoding not in ("", "identity", "gzip"):
            owner.unsupported_requests += 1
            return self._status(415, encoding, code_pb2.INVALID_ARGUMENT, "Content-Encoding must be gzip or identity")
        declared = request.content_length
        if declared is not None and declared > self.max_request:
            owner.too_large_requests += 1
            owner.warn("too_large", "requests over max_request_bytes refused (413)", bytes=declared)
            return self._status(413, encoding, code_pb2.RESOURCE_EXHAUSTED, "the request is over max_request_bytes")
        receiver = self.receiver
        assert receiver is not None
        reserved = declared if declared is not None else self.max_request
        refused = receiver.admit(reserved)
        if refused is not None:
            return self._answer(kind, encoding, refused)
        try:
            body = await self._read(request)
            if body is None:
                owner.too_large_requests += 1
                owner.warn("too_large", "requests over max_request_bytes refused (413)")
                return self._status(413, encoding, code_pb2.RESOURCE_EXHAUSTED, "the request is over max_request_bytes")
            try:
                message = decode_body(body, content_encoding, encoding, REQUESTS[kind], self.max_decompressed)
            except TooLarge as exc:
                owner.too_large_requests += 1
                owner.warn("too_large", "requests expanding past max_decompressed_bytes refused (413)")
                return self._status(413, encoding, code_pb2.RESOURCE_EXHAUSTED, str(exc))
            except InvalidBody as exc:
                owner.invalid_requests += 1
                owner.warn("invalid", "invalid OTLP/HTTP requests refused (400)", signal=kind, error=str(exc)[:200])
                return self._status(400, encoding, code_pb2.INVALID_ARGUMENT, str(exc)[:1000])
            size = len(body)
            del body
            answer = await receiver.export(kind, message, size)
            return self._answer(kind, encoding, answer)
        finally:
            receiver.release_bytes(reserved)
            receiver.done()

    async def _read(self, request: web.Request) -> bytes | None:
        """The body, or None as soon as it is over max_request_bytes."""
        limit = self.max_request
        parts: list[bytes] = []
        total = 0
        content = request.content
        while True:
            chunk = await content.read(READ_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                return None
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _answer(self, kind: str, encoding: str, answer: Answer) -> web.Response:
        if answer.status == OK:
            body = encode_message(response_message(kind, answer), encoding)
            return web.Response(status=200, body=body, content_type=MEDIA_TYPES[encoding])
        if answer.status == RETRY:
            response = self._status(503, encoding, code_pb2.UNAVAILABLE, answer.message)
            response.headers["Retry-After"] = str(max(1, math.ceil(answer.retry_after)))
            return response
        return self._status(500, encoding, code_pb2.INTERNAL, answer.message)

    @staticmethod
    def _status(http_status: int, encoding: str, code: int, message: str) -> web.Response:
        status = status_pb2.Status(code=code, message=message)
        return web.Response(
            status=http_status, body=encode_message(status, encoding), content_type=MEDIA_TYPES[encoding]
        )
