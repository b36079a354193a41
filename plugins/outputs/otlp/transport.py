"""OTLP/HTTP (protobuf, aiohttp) and OTLP/gRPC (grpc.aio) transports: send one serialized export request.

Both take the request already serialized (the output measures its exact size before sending) and answer with
`Accepted` (the server's partial_success) or a `SendResult` for a failure, per the spec's rules (answers.py).
grpc and aiohttp's client are imported when the transport starts, not when the plugin module loads.
"""

from __future__ import annotations

import gzip
import ssl
from collections.abc import Mapping
from typing import Any

from collector.send_result import SendResult
from collector_plugins.outputs.otlp.answers import Accepted, accepted, grpc_failure, http_failure

# Per signal: (HTTP path, gRPC method, response message, partial_success field).
SIGNALS: dict[str, tuple[str, str, str, str]] = {
    "traces": (
        "/v1/traces",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        "opentelemetry.proto.collector.trace.v1.trace_service_pb2:ExportTraceServiceResponse",
        "rejected_spans",
    ),
    "logs": (
        "/v1/logs",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        "opentelemetry.proto.collector.logs.v1.logs_service_pb2:ExportLogsServiceResponse",
        "rejected_log_records",
    ),
    "metrics": (
        "/v1/metrics",
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        "opentelemetry.proto.collector.metrics.v1.metrics_service_pb2:ExportMetricsServiceResponse",
        "rejected_data_points",
    ),
}


def response_class(signal: str) -> Any:
    import importlib

    module, name = SIGNALS[signal][2].split(":")
    return getattr(importlib.import_module(module), name)


Answer = Accepted | SendResult


class HttpTransport:
    """POST application/x-protobuf to one URL per signal; gzip, headers, a custom CA, SigV4 when given a signer."""

    def __init__(
        self,
        urls: Mapping[str, str],
        headers: Mapping[str, str],
        gzip_body: bool,
        timeout: float,
        ca_file: str | None,
        signer: Any = None,
    ) -> None:
        self.urls = dict(urls)
        self.headers = {"Content-Type": "application/x-protobuf", **headers}
        if gzip_body:
            self.headers["Content-Encoding"] = "gzip"
        self.gzip = gzip_body
        self.timeout = timeout
        self.ca_file = ca_file
        self.signer = signer
        self.session: Any = None
        self.responses = {signal: response_class(signal) for signal in SIGNALS}

    async def start(self) -> None:
        import aiohttp

        context: ssl.SSLContext | bool = True
        if self.ca_file:
            context = ssl.create_default_context(cafile=self.ca_file)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=64),
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            auto_decompress=True,
        )

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    async def export(self, signal: str, payload: bytes) -> Answer:
        import aiohttp

        if self.session is None:
            await self.start()
        url = self.urls[signal]
        body = gzip.compress(payload, compresslevel=5) if self.gzip else payload
        headers = self.headers
        if self.signer is not None:
            headers = await self.signer.sign(url, body, headers)
        try:
            async with self.session.post(url, data=body, headers=headers) as response:
                content = await response.read()
                if 200 <= response.status < 300:
                    return _partial(self.responses[signal], content, SIGNALS[signal][3])
                return http_failure(response.status, response.headers.get("Retry-After"), content)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return SendResult.retry(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _partial(response_cls: Any, content: bytes, field: str) -> Answer:
    if not content:
        return Accepted()
    try:
        response = response_cls.FromString(content)
    except Exception:
        # A 2xx whose body is not the response message: the data was accepted; nothing to learn from it.
        return Accepted()
    return accepted(response, field)


class GrpcTransport:
    """Unary Export calls on one grpc.aio channel (insecure, or TLS with an optional CA); gzip; metadata."""

    def __init__(
        self, target: str, tls: bool, headers: Mapping[str, str], gzip_body: bool, timeout: float, ca_file: str | None
    ) -> None:
        self.target = target
        self.tls = tls
        self.metadata = tuple((k.lower(), v) for k, v in headers.items())
        self.gzip = gzip_body
        self.timeout = timeout
        self.ca_file = ca_file
        self.channel: Any = None
        self.calls: dict[str, Any] = {}

    async def start(self) -> None:
        import grpc

        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if self.tls:
            root = None
            if self.ca_file:
                with open(self.ca_file, "rb") as f:
                    root = f.read()
            credentials = grpc.ssl_channel_credentials(root_certificates=root)
            self.channel = grpc.aio.secure_channel(self.target, credentials, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(self.target, options=options)
        for signal, (_, method, _, _) in SIGNALS.items():
            # The request is serialized already (its exact size was checked): send its bytes as they are.
            self.calls[signal] = self.channel.unary_unary(
                method, request_serializer=_identity, response_deserializer=response_class(signal).FromString
            )

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None
            self.calls = {}

    async def export(self, signal: str, payload: bytes) -> Answer:
        import grpc

        if self.channel is None:
            await self.start()
        compression = grpc.Compression.Gzip if self.gzip else grpc.Compression.NoCompression
        try:
            response = await self.calls[signal](
                payload, timeout=self.timeout, metadata=self.metadata, compression=compression
            )
        except grpc.aio.AioRpcError as exc:
            details = None
            for key, value in exc.trailing_metadata() or ():
                if key == "grpc-status-details-bin":
                    details = value if isinstance(value, bytes) else None
            return grpc_failure(exc.code().name, exc.details() or "", details)
        return accepted(response, SIGNALS[signal][3])


def _identity(payload: bytes) -> bytes:
    return payload
