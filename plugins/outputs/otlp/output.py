"""`otlp`: traces, logs and metrics to any OTLP endpoint, over OTLP/HTTP (protobuf) or OTLP/gRPC.

`send` encodes the batch once into one export request (`common/otlp/encode.py`, `encode_metrics.py`): records
the encoding cannot carry are dead-lettered with the reason, alone. The driver cuts requests within
`limits.LIMITS` (4 MiB, the gRPC default message size) by an estimate of each record's size; `send` then
measures the exact encoded size and, when a request would be larger than the endpoint takes (or holds more
items than an AWS endpoint allows), splits it and sends the parts in turn, so no request is ever over a
limit. The answer of each part becomes the outcome of its records (answers.py: the OTLP spec's retryable
codes, Retry-After, RetryInfo); a part refused for good is dead-lettered, the parts after a retryable
failure are retried without being sent, so an accepted record is never sent again by this output. A
`partial_success` with rejected items is a success whose rejected items are counted as lost
(`rejected_by_server` in the loss ledger, `items_rejected` here) and logged with the server's message: the
spec forbids retrying them and the server does not say which they were.

With `aws:` the requests are signed with SigV4 (sigv4.py) for AWS's OTLP endpoints: X-Ray's traces endpoint
(service `xray`) or CloudWatch Logs' logs endpoint (service `logs`, with the log group and stream headers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import ConfigDict, Field, model_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import KINDS, LOGS, METRICS, TRACES, Batch, Metric
from collector.log import RepeatLimiter, kv
from collector.output_limits import Limit
from collector.send_result import Outcome, PermanentError, RetryableError, SendResult
from collector.units import Duration
from collector_plugins.common.aws.settings import AwsSettings
from collector_plugins.outputs.otlp import limits as otlp_limits

DEFAULT_HTTP = "http://127.0.0.1:4318"
DEFAULT_GRPC = "http://127.0.0.1:4317"
# Bytes a request adds around its items (ResourceSpans, ScopeSpans, their attributes): kept free under the
# request limit so that the items' sizes plus this never exceed it.
GROUPING_RESERVE = 16 * 1024


class AwsSigning(AwsSettings):
    """SigV4 signing for AWS's OTLP endpoints (credentials from the standard chain, or `role_arn`)."""

    service: Literal["xray", "logs"] = Field(
        description="`xray`: X-Ray's OTLP traces endpoint (https://xray.REGION.amazonaws.com/v1/traces); `logs`: "
        "CloudWatch Logs' OTLP logs endpoint (https://logs.REGION.amazonaws.com/v1/logs).",
        examples=["xray", "logs"],
    )
    log_group: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="The existing log group the logs endpoint writes to (`x-aws-log-group`); required for `logs`.",
        examples=["/otel/app"],
    )
    log_stream: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="The existing log stream the logs endpoint writes to (`x-aws-log-stream`); required for `logs`.",
        examples=["node-1"],
    )

    @model_validator(mode="after")
    def _check_logs(self) -> AwsSigning:
        if self.service == "logs" and not (self.log_group and self.log_stream):
            raise ValueError("aws.service `logs` needs `log_group` and `log_stream` (the endpoint requires both)")
        return self


class OtlpConfig(OutputConfig):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["otlp"] = Field(description="Sends to an OTLP endpoint (OTLP/HTTP or OTLP/gRPC).", examples=["otlp"])
    protocol: Literal["http", "grpc"] = Field(
        "http",
        description="`http`: OTLP/HTTP with protobuf bodies; `grpc`: OTLP/gRPC.",
        examples=["http", "grpc"],
    )
    endpoint: str | None = Field(
        None,
        description="Base URL. HTTP: `/v1/traces`, `/v1/logs`, `/v1/metrics` are appended (default "
        "http://127.0.0.1:4318). gRPC: `http://host:port` (plain) or `https://host:port` (TLS) (default "
        "http://127.0.0.1:4317). With `aws:` and no endpoint: the service's regional endpoint.",
        examples=["http://aggregator.internal:4318", "https://collector.example.com:4317"],
    )
    traces_endpoint: str | None = Field(
        None,
        description="HTTP only: the full URL for traces, used as is.",
        examples=["https://otlp.example.com/v1/traces"],
    )
    logs_endpoint: str | None = Field(
        None, description="HTTP only: the full URL for logs, used as is.", examples=["https://otlp.example.com/v1/logs"]
    )
    metrics_endpoint: str | None = Field(
        None,
        description="HTTP only: the full URL for metrics, used as is.",
        examples=["https://otlp.example.com/v1/metrics"],
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers (HTTP) or metadata (gRPC) sent with every request, e.g. an API key: give secret "
        "values through `${VAR}` (the values are never logged).",
        examples=[{"authorization": "Bearer ${OTLP_TOKEN}"}],
        repr=False,
    )
    compression: Literal["gzip", "none"] = Field(
        "gzip", description="Request body compression.", examples=["gzip", "none"]
    )
    ca_file: str | None = Field(
        None,
        description="A PEM file of CA certificates to trust for an https endpoint (private CAs).",
        examples=["/etc/pki/tls/certs/corp-ca.pem"],
    )
    timeout: Duration = Field(10.0, description="Timeout of one export request.", examples=["10s"])
    aws: AwsSigning | None = Field(
        None,
        description="Sign requests with SigV4 for AWS's OTLP endpoints (OTLP/HTTP only).",
        examples=[{"service": "xray", "region": "eu-west-1"}],
    )

    @model_validator(mode="after")
    def _check(self) -> OtlpConfig:
        if self.protocol == "grpc" and (self.traces_endpoint or self.logs_endpoint or self.metrics_endpoint):
            raise ValueError("per-signal endpoints are for protocol `http`; gRPC has one `endpoint`")
        if self.aws is not None and self.protocol != "http":
            raise ValueError("AWS's OTLP endpoints take OTLP/HTTP only: set `protocol: http` with `aws:`")
        for url in (self.endpoint, self.traces_endpoint, self.logs_endpoint, self.metrics_endpoint):
            if url is not None and urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"endpoint {url!r} must start with http:// or https://")
        if self.aws is not None:
            max_bytes, max_items, _ = _aws_limits(self.aws.service)
            if self.batch.max_bytes is not None and self.batch.max_bytes > max_bytes.value:
                raise ValueError(
                    f"batch.max_bytes is above the endpoint's {max_bytes.value} bytes ({max_bytes.source})"
                )
            if self.batch.max_events is not None and self.batch.max_events > max_items.value:
                raise ValueError(f"batch.max_events is above the endpoint's {max_items.value} ({max_items.source})")
        return self


def _aws_limits(service: str) -> tuple[Limit, Limit, Limit | None]:
    return otlp_limits.AWS_LIMITS[service]


class OtlpOutput(Output):
    type_name: ClassVar[str] = "otlp"
    description: ClassVar[str] = "Sends traces, logs and metrics to an OTLP endpoint over OTLP/HTTP or OTLP/gRPC."
    Config: ClassVar[type[OtlpConfig]] = OtlpConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    limits = otlp_limits.LIMITS
    default_batch_timeout: ClassVar[float] = 0.2
    default_max_events: ClassVar[int | None] = 8192  # the OpenTelemetry Collector's batch size default

    config: OtlpConfig

    @classmethod
    def accepted_kinds(cls, config: Any) -> frozenset[str]:
        if config.aws is not None:
            return frozenset({TRACES} if config.aws.service == "xray" else {LOGS})
        return cls.accepts

    def __init__(self, config: OtlpConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.transport: Any = None
        self._encoders: dict[str, Callable[[Any], Any]] = {}
        self._limiter = RepeatLimiter(60.0)
        self.max_request_bytes = otlp_limits.MAX_REQUEST_BYTES.value
        self.max_items: int | None = None
        self.max_item_bytes: int | None = None
        if config.aws is not None:
            max_bytes, max_items, max_item = _aws_limits(config.aws.service)
            self.max_request_bytes = min(self.max_request_bytes, max_bytes.value)
            self.max_items = max_items.value
            self.max_item_bytes = max_item.value if max_item else None
        if config.batch.max_bytes is not None:
            self.max_request_bytes = min(self.max_request_bytes, config.batch.max_bytes)
        self.requests = 0
        """Export requests made (each part of a split batch counts)."""
        self.items_sent = 0
        """Spans, log records and data points the endpoint accepted."""
        self.items_rejected = 0
        """Items the endpoint accepted the request of but rejected in its `partial_success` (counted as lost)."""
        self.bytes_sent = 0
        """Encoded request bytes sent (before compression)."""

    # -- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        self._load_encoders()
        self.transport = await self._transport()
        await self.transport.start()

    async def stop(self) -> None:
        if self.transport is not None:
            await self.transport.close()
            self.transport = None

    def _load_encoders(self) -> None:
        if not self._encoders:
            from collector_plugins.common.otlp.encode import encode_logs, encode_spans
            from collector_plugins.common.otlp.encode_metrics import encode_metrics

            self._encoders = {TRACES: encode_spans, LOGS: encode_logs, METRICS: encode_metrics}

    async def _transport(self) -> Any:
        from collector_plugins.outputs.otlp.transport import SIGNALS, GrpcTransport, HttpTransport

        config = self.config
        gzip_body = config.compression == "gzip"
        if config.protocol == "grpc":
            url = urlsplit(config.endpoint or DEFAULT_GRPC)
            tls = url.scheme == "https" or config.ca_file is not None
            return GrpcTransport(url.netloc, tls, config.headers, gzip_body, config.timeout, config.ca_file)
        headers = dict(config.headers)
        signer = None
        base = config.endpoint
        if config.aws is not None:
            from collector_plugins.common.aws.session import AwsClients
            from collector_plugins.outputs.otlp.sigv4 import SigV4Signer

            clients = AwsClients(config.aws, self.ctx)
            signer = SigV4Signer(clients, config.aws.service)
            base = (
                config.aws.endpoint_url
                or base
                or f"https://{config.aws.service}.{await clients.region()}.amazonaws.com"
            )
            if config.aws.service == "logs":
                headers["x-aws-log-group"] = config.aws.log_group or ""
                headers["x-aws-log-stream"] = config.aws.log_stream or ""
        base = (base or DEFAULT_HTTP).rstrip("/")
        overrides = {TRACES: config.traces_endpoint, LOGS: config.logs_endpoint, METRICS: config.metrics_endpoint}
        urls = {signal: overrides[signal] or base + SIGNALS[signal][0] for signal in SIGNALS}
        return HttpTransport(
            urls,
            headers,
            gzip_body,
            config.timeout,
            config.ca_file or (config.aws.ca_bundle if config.aws else None),
            signer,
        )

    def counters(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "items_sent": self.items_sent,
            "items_rejected": self.items_rejected,
            "bytes_sent": self.bytes_sent,
        }

    # -- sizes ------------------------------------------------------------------------------------------

    def record_size(self, record: Any) -> int:
        # An estimate (the exact size needs the encoding, done once in `send`, which splits if it was low):
        # JSON is larger than protobuf for our records (hex ids, quoted keys), so requests rarely need a split.
        if isinstance(record, Metric):
            value = record.value
            n = len(value) if isinstance(value, (list, tuple)) else len(orjson.dumps(value, default=str))
            return 64 + len(record.name) + sum(len(k) + len(v) + 8 for k, v in record.tags.items()) + 10 * n
        try:
            return len(orjson.dumps(record, default=str))
        except TypeError:
            return len(repr(record))

    # -- sending ----------------------------------------------------------------------------------------

    async def write(self, batch: Batch) -> None:
        result = await self.send(batch)
        if result.per_record is not None:
            bad = [
                r for r, o in zip(result.record_reasons or (), result.per_record, strict=False) if o is not Outcome.OK
            ]
            if any(o is Outcome.DROP for o in result.per_record):
                raise PermanentError(bad[0] if bad else "rejected")
            if bad:
                raise RetryableError(bad[0], result.retry_after, result.throttled)
        elif result.outcome is Outcome.DROP:
            raise PermanentError(result.reason)
        elif result.outcome is Outcome.RETRY:
            raise RetryableError(result.reason, result.retry_after, result.throttled)

    async def send(self, batch: Batch) -> SendResult:
        records = batch.records
        if not records:
            return SendResult.ok()
        if batch.kind not in self.accepted_kinds(self.config):
            return SendResult.drop(
                f"{batch.kind} cannot go to this endpoint ({self.config.aws.service if self.config.aws else ''})"
            )
        if self.transport is None:
            await self.start()
        encode = self._encoders[batch.kind]
        encoded = encode(records)
        outcomes = [Outcome.OK] * len(records)
        reasons = [""] * len(records)
        for index, reason in encoded.rejected:
            outcomes[index], reasons[index] = Outcome.DROP, reason
        parts = self._parts(encoded, outcomes, reasons)
        if not encoded.rejected and len(parts) == 1 and len(parts[0]) == len(records):
            # The common case: the whole batch is one request, its answer is the batch's.
            return await self._export(batch.kind, encoded.request, len(records))
        retry_after: float | None = None
        throttled = False
        failed: SendResult | None = None
        outcome: Outcome
        for part in parts:
            if failed is None:
                request = (
                    encoded.request
                    if len(parts) == 1 and len(part) == len(encoded.kept)
                    else encode([records[i] for i in part]).request
                )
                answer = await self._export(batch.kind, request, len(part))
                if answer.outcome is Outcome.OK:
                    continue
                if answer.outcome is Outcome.RETRY:
                    failed = answer  # the parts after it wait for the retry, unsent
                    retry_after, throttled = answer.retry_after, answer.throttled
                outcome, reason = answer.outcome, answer.reason
            else:
                outcome, reason = failed.outcome, failed.reason
            for i in part:
                outcomes[i], reasons[i] = outcome, reason
        if all(o is Outcome.OK for o in outcomes):
            return SendResult.ok()
        return SendResult.partial(outcomes, reasons, retry_after, throttled)

    def _parts(self, encoded: Any, outcomes: list[Outcome], reasons: list[str]) -> list[list[int]]:
        """The kept records' indexes cut into requests within the byte and item limits; oversized ones dropped."""
        limit = self.max_request_bytes - GROUPING_RESERVE
        max_items = self.max_items
        if (
            encoded.request.ByteSize() <= self.max_request_bytes
            and (max_items is None or len(encoded.kept) <= max_items)
            and (self.max_item_bytes is None or all(s <= self.max_item_bytes for s in encoded.sizes))
        ):
            return [list(encoded.kept)]
        parts: list[list[int]] = []
        current: list[int] = []
        size = 0
        for index, item_size in zip(encoded.kept, encoded.sizes, strict=True):
            if item_size > limit or (self.max_item_bytes is not None and item_size > self.max_item_bytes):
                outcomes[index], reasons[index] = Outcome.DROP, f"record_too_large: {item_size} bytes encoded"
                continue
            if current and (size + item_size > limit or (max_items is not None and len(current) >= max_items)):
                parts.append(current)
                current, size = [], 0
            current.append(index)
            size += item_size
        if current:
            parts.append(current)
        return parts

    async def _export(self, kind: str, request: Any, items: int) -> SendResult:
        from collector_plugins.outputs.otlp.answers import Accepted

        payload = request.SerializeToString()
        self.requests += 1
        answer = await self.transport.export(kind, payload)
        if not isinstance(answer, Accepted):
            return answer
        self.bytes_sent += len(payload)
        if answer.rejected:
            rejected = min(answer.rejected, items) if kind != TRACES else answer.rejected
            self.items_rejected += rejected
            self.items_sent += max(0, items - rejected)
            self.ctx.loss("rejected_by_server", rejected)
            now, _, suppressed = self._limiter.check(self.ctx.name, "partial_success")
            if now:
                fields: dict[str, Any] = {"component": self.ctx.name, "rejected": rejected, "message": answer.message}
                if suppressed:
                    fields["repeats_suppressed"] = suppressed
                self.log.error("endpoint rejected items of an accepted request; they are lost", extra=kv(**fields))
        else:
            self.items_sent += items
        return SendResult.ok()
