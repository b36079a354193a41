"""`otlp` input: OpenTelemetry's OTLP over gRPC (4317) and HTTP (4318), traces, metrics and logs.

Design note. One input, two transports, three signal kinds. `start()` binds both ports (so a taken port fails
the start); `run()` serves them until the input is asked to stop. The transports (`grpc_server.py`,
`http_server.py`) decode and encode only; `receiver.py` admits, converts (plugins/common/otlp: spans and log
records per the OTLP record contract, metrics through `OtlpMetricsConverter`), hands each request on as one
batch of its own kind with an acknowledgement token, and answers once the batch is durable downstream
(exactly like the `forward` input's acks), retryable when the pipeline cannot take it in time.

The input emits up to three kinds (`signals`, all by default): the graph routes each batch to the consumers
that accept its kind (collector/routing.py), so `traces` go to `xray`, `metrics` to `cloudwatch_metrics` and
`logs` to `cloudwatch_logs` from one input. A signal not listed is not served (gRPC UNIMPLEMENTED, HTTP 404).

Stopping: new requests are answered retryable (the client keeps the data), requests in hand get up to
`STOP_TIMEOUT` to be handed on and acknowledged, then both servers close; what was never answered "OK" the
client sends again.

The grpc, protobuf and OTLP message modules are imported when the input is built, not with this module, so a
configuration without an `otlp` input does not load them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from collector.api import ComponentContext, Input, InputConfig, InputContext
from collector.events import KINDS, LOGS, METRICS, TRACES
from collector.log import RepeatLimiter, kv
from collector.units import Duration, Size

if TYPE_CHECKING:
    from collector_plugins.common.otlp.metrics import OtlpMetricsConverter
    from collector_plugins.inputs.otlp.grpc_server import GrpcServer
    from collector_plugins.inputs.otlp.http_server import HttpServer
    from collector_plugins.inputs.otlp.receiver import Receiver

# How long a stopping input waits for the requests in hand to be handed on and acknowledged.
STOP_TIMEOUT = 5.0
Signal = Literal["traces", "metrics", "logs"]


def _host_port(value: str | None) -> str | None:
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r}: give HOST:PORT, e.g. 127.0.0.1:4317")
    if not host:
        return f"127.0.0.1:{port}"
    return value


class OtlpConfig(InputConfig):
    type: Literal["otlp"] = Field(description="Receives OTLP over gRPC and HTTP.", examples=["otlp"])
    grpc_listen: str | None = Field(
        default="127.0.0.1:4317",
        description="`HOST:PORT` of the OTLP/gRPC server; null serves no gRPC. `0.0.0.0:4317` for other hosts "
        "(a sidecar or DaemonSet serving pods).",
        examples=["127.0.0.1:4317", "0.0.0.0:4317", None],
    )
    http_listen: str | None = Field(
        default="127.0.0.1:4318",
        description="`HOST:PORT` of the OTLP/HTTP server (`/v1/traces`, `/v1/metrics`, `/v1/logs`); null serves "
        "no HTTP.",
        examples=["127.0.0.1:4318", None],
    )
    signals: list[Signal] = Field(
        default=["traces", "metrics", "logs"],
        description="The signals served and emitted; a signal not listed is answered UNIMPLEMENTED (gRPC) / 404.",
        examples=[["traces", "metrics", "logs"], ["traces"]],
    )
    max_request_bytes: Size = Field(
        default=4 * 1024 * 1024,
        description="Largest OTLP/HTTP body accepted as sent (compressed or not); a larger one is answered 413.",
        examples=["4MiB"],
    )
    max_decompressed_bytes: Size = Field(
        default=16 * 1024 * 1024,
        description="Largest request after decompression (HTTP and gRPC); a request expanding past it is refused "
        "(413 / RESOURCE_EXHAUSTED) as soon as it does, so a gzip bomb costs at most this much.",
        examples=["16MiB"],
    )
    max_concurrent_requests: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Requests handled at once (both transports); more are answered retryable (503 / UNAVAILABLE).",
        examples=[64],
    )
    max_in_flight_bytes: Size = Field(
        default=64 * 1024 * 1024,
        description="Most request bytes being decoded, converted and handed on at once; past it, requests are "
        "answered retryable. One request is always admitted.",
        examples=["64MiB"],
    )
    backpressure_timeout: Duration = Field(
        default=2.0,
        gt=0,
        description="How long a request may wait for a full pipeline (a buffer with `when_full: block`) to take "
        "it before it is answered retryable (503 with Retry-After / UNAVAILABLE with RetryInfo).",
        examples=["2s"],
    )
    ack_timeout: Duration = Field(
        default=7.0,
        gt=0,
        description="How long a request waits for its data to be durable in every output's buffer (delivered, "
        "for memory buffers) before it is answered retryable. With `backpressure_timeout`, keep it under the "
        "clients' export timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by default).",
        examples=["7s"],
    )
    retry_after: Duration = Field(
        default=1.0,
        gt=0,
        description="The delay a retryable answer asks for (HTTP Retry-After, rounded up to whole seconds; gRPC "
        "RetryInfo).",
        examples=["1s"],
    )
    metric_resource_tags: list[str] | None = Field(
        default=["service.name"],
        description="Resource attributes that become metric tags (dimensions); null: all of them.",
        examples=[["service.name"], ["service.name", "host.name"], None],
    )
    max_metric_series: int = Field(
        default=10_000,
        ge=1,
        description="Cumulative series tracked to compute increases; points of further series are dropped and "
        "counted (`cardinality_limit`).",
        examples=[10_000],
    )

    @field_validator("grpc_listen", "http_listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        return _host_port(value)

    @field_validator("signals")
    @classmethod
    def _check_signals(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one signal")
        if len(set(value)) != len(value):
            raise ValueError("a signal is listed twice")
        return value

    @model_validator(mode="after")
    def _check(self) -> OtlpConfig:
        if self.grpc_listen is None and self.http_listen is None:
            raise ValueError("grpc_listen and http_listen are both null: nothing to serve")
        grpc = self.grpc_listen
        if grpc is not None and grpc == self.http_listen and not grpc.endswith(":0"):  # port 0: two ports
            raise ValueError("grpc_listen and http_listen must differ")
        if not 1024 <= self.max_request_bytes <= 1024**3:
            raise ValueError("max_request_bytes must be between 1KiB and 1GiB")
        if not self.max_request_bytes <= self.max_decompressed_bytes <= 4 * 1024**3:
            raise ValueError("max_decompressed_bytes must be at least max_request_bytes and at most 4GiB")
        if self.max_in_flight_bytes < 1024 * 1024:
            raise ValueError("max_in_flight_bytes must be at least 1MiB")
        return self


class Otlp(Input):
    type_name: ClassVar[str] = "otlp"
    description: ClassVar[str] = (
        "Receives OTLP traces, metrics and logs over gRPC and HTTP (OpenTelemetry SDKs); answers once durable."
    )
    Config: ClassVar[type[OtlpConfig]] = OtlpConfig
    emits: ClassVar[frozenset[str]] = frozenset(KINDS)

    config: OtlpConfig

    @classmethod
    def emitted_kinds(cls, config: Any) -> frozenset[str]:
        return frozenset(config.signals)

    @classmethod
    def memory_bound(cls, config: Any) -> int:
        return int(config.max_in_flight_bytes)

    def __init__(self, config: OtlpConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._limiter = RepeatLimiter()
        self._metrics: OtlpMetricsConverter | None = None
        self.grpc: GrpcServer | None = None
        self.http: HttpServer | None = None
        self.receiver: Receiver | None = None
        self.grpc_requests = 0
        self.http_requests = 0
        self.received = {TRACES: 0, LOGS: 0, METRICS: 0}
        self.rejected = {TRACES: 0, LOGS: 0, METRICS: 0}
        self.invalid_requests = 0
        self.too_large_requests = 0
        self.unsupported_requests = 0
        self.refused_busy = 0
        self.refused_backpressure = 0
        self.refused_stopping = 0
        self.ack_timeouts = 0
        self.internal_errors = 0

    def metrics_converter(self) -> OtlpMetricsConverter:
        if self._metrics is None:
            from collector_plugins.common.otlp.metrics import OtlpMetricsConverter

            self._metrics = OtlpMetricsConverter(self.config.max_metric_series, self.config.metric_resource_tags)
        return self._metrics

    def counters(self) -> dict[str, float]:
        received, rejected = self.received, self.rejected
        metrics = self._metrics
        return {
            "grpc_requests": self.grpc_requests,
            "http_requests": self.http_requests,
            "spans": received[TRACES],
            "log_records": received[LOGS],
            "metric_records": received[METRICS],
            "rejected_spans": rejected[TRACES],
            "rejected_log_records": rejected[LOGS],
            "rejected_data_points": rejected[METRICS],
            "invalid_requests": self.invalid_requests,
            "too_large_requests": self.too_large_requests,
            "unsupported_requests": self.unsupported_requests,
            "refused_busy": self.refused_busy,
            "refused_backpressure": self.refused_backpressure,
            "refused_stopping": self.refused_stopping,
            "ack_timeouts": self.ack_timeouts,
            "internal_errors": self.internal_errors,
            "metric_points": metrics.points if metrics is not None else 0,
            "metric_series": len(metrics.state) if metrics is not None else 0,
            "metric_resets": metrics.state.resets if metrics is not None else 0,
        }

    def count(self, kind: str, records: int, rejected: int) -> None:
        self.received[kind] += records
        self.rejected[kind] += rejected

    def warn(self, cause: str, message: str, **fields: Any) -> None:
        """Log a warning at most once an interval per `cause`, with how many were held back."""
        now, _, suppressed = self._limiter.check(cause)
        if now:
            if suppressed:
                fields["repeats_suppressed"] = suppressed
            self.log.warning(message, extra=kv(component=self.ctx.name, **fields))

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        self.metrics_converter()
        if config.grpc_listen is not None:
            from collector_plugins.inputs.otlp.grpc_server import GrpcServer

            self.grpc = GrpcServer(self, config.grpc_listen, config.signals)
        if config.http_listen is not None:
            from collector_plugins.inputs.otlp.http_server import HttpServer, bind_socket

            host, _, port = config.http_listen.rpartition(":")
            try:
                sock = bind_socket(host.strip("[]"), int(port))
            except OSError:
                await self.stop()
                raise
            self.http = HttpServer(self, sock, config.signals)

    async def run(self, ctx: InputContext) -> None:
        from collector_plugins.inputs.otlp.receiver import Receiver

        receiver = self.receiver = Receiver(self, ctx)
        try:
            if self.grpc is not None:
                await self.grpc.start(receiver)
            if self.http is not None:
                await self.http.start(receiver)
            self.log.info("listening", extra=kv(component=ctx.name, **self.addresses()))
            await ctx.stopping.wait()
            receiver.stopping = True  # new requests: retryable; those in hand may still finish
            try:
                await asyncio.wait_for(receiver.idle.wait(), STOP_TIMEOUT)
            except TimeoutError:
                pass
        finally:
            receiver.stopping = True
            await self._stop_servers()

    async def _stop_servers(self) -> None:
        if self.grpc is not None:
            await self.grpc.stop(None)
        if self.http is not None:
            await self.http.stop()

    async def stop(self) -> None:
        await self._stop_servers()
        if self.http is not None:
            self.http.close()

    def addresses(self) -> dict[str, str]:
        """Where it listens, with the ports actually bound (port 0 in the config: chosen by the system)."""
        out = {}
        if self.grpc is not None and self.config.grpc_listen is not None:
            out["grpc"] = f"{self.config.grpc_listen.rpartition(':')[0]}:{self.grpc.port}"
        if self.http is not None and self.config.http_listen is not None:
            out["http"] = f"{self.config.http_listen.rpartition(':')[0]}:{self.http.port}"
        return out
