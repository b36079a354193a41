"""`xray`: trace segments to AWS X-Ray (PutTraceSegments), durably, where the daemon would drop them.

The shared driver does buffering (memory or disk), batching (at most 50
documents per call, sent at the latest 1 s after the first one waited, as the
daemon does), concurrency (8 calls in flight by default, the daemon's), retries
with backoff and dead letters. This module only builds a call and reads its
answer:

- A record's document is its `raw` (bytes from the `xray` input, forwarded
  byte for byte; a str is sent as it is); a trace record without `raw` (the
  generator's, or one built by a processor) is sent as its JSON serialisation.
- A failed call is classified by the AWS layer: throttling, 5xx, timeouts and
  connection errors are retried with backoff; validation and access errors are
  dead-lettered, the missing IAM permission logged once.
- `UnprocessedTraceSegments` are matched to the documents by segment id and
  answered per record (`SendResult.partial`): throttling and internal errors
  are retried (only those documents), any other code is a permanent rejection
  (dead-lettered, replayable with `collector dlq replay`). An entry without an
  id (X-Ray could not read the document) is matched to the documents that do
  not parse to an object with a string `id`.
- An OTLP span record (`format: otlp`, from the `otlp` input) is converted to a segment document here
  (`collector_plugins/common/otlp/xray_segments.py`, the X-Ray exporter's mapping), in the batch, one by one:
  a span that cannot be converted, or whose document is over 64 KiB, is dead-lettered with the reason and its
  neighbours are sent. Conversion happens when the driver sizes the record; the document is kept (a bounded
  cache by record identity) for the send.
- `local_mode` never touches EC2 instance metadata: the region must come from
  the config, the environment or the profile, and the credential chain skips
  the instance-role provider.
"""

from __future__ import annotations

import os
import re
from typing import Any, ClassVar, Literal

import orjson
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, field_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import TRACES, Batch
from collector.log import RepeatLimiter, kv
from collector.send_result import Outcome, SendResult
from collector.units import Duration
from collector_plugins.common.aws.errors import THROTTLING_CODES, TRANSIENT_CODES, classify_aws_error
from collector_plugins.common.aws.records import raise_unless_delivered
from collector_plugins.common.aws.session import AwsClients
from collector_plugins.common.aws.settings import AwsSettings
from collector_plugins.common.otlp.xray_segments import SegmentMapper, SegmentOptions, SpanRejected, is_span_record
from collector_plugins.common.record_encoding import json_default
from collector_plugins.outputs.xray import limits as xray_limits
from collector_plugins.outputs.xray.telemetry import Telemetry

ACTION = "xray:PutTraceSegments"
TELEMETRY_ACTION = "xray:PutTelemetryRecords"
DEFAULT_CONCURRENCY = 8  # the daemon's Concurrency
_RESOURCE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:\d{0,12}:.+$")
# Codes of UnprocessedTraceSegments entries worth another try; any other is a permanent rejection.
RETRYABLE_SEGMENT_ERRORS = THROTTLING_CODES | TRANSIENT_CODES
# Span records converted while sizing, kept for the send (the driver sizes, then sends, the same objects).
DOCUMENT_CACHE_SIZE = 8192


class XRayOutputConfig(AwsSettings, OutputConfig):
    type: Literal["xray"] = Field(description="Sends trace segments to AWS X-Ray.", examples=["xray"])
    concurrency: int = Field(
        DEFAULT_CONCURRENCY,
        ge=1,
        le=64,
        description="PutTraceSegments calls in flight at once (segments need no order; the daemon uses 8).",
        examples=[8],
    )
    local_mode: bool = Field(
        default=False,
        description=(
            "Never query EC2 instance metadata (off EC2: on-premises, laptops, containers elsewhere), like the "
            "daemon's --local-mode. The region must then come from `region`, AWS_REGION or the profile."
        ),
        examples=[True],
    )
    resource_arn: str | None = Field(
        default=None,
        description="ARN of the AWS resource running the collector, sent with telemetry records.",
        examples=["arn:aws:ec2:eu-west-1:123456789012:instance/i-0123456789abcdef0"],
    )
    telemetry: bool = Field(
        default=False,
        description=(
            "Publish telemetry records (segments received, sent, rejected, spilled over; connection errors) "
            "with PutTelemetryRecords, as the daemon does. Needs xray:PutTelemetryRecords."
        ),
        examples=[True],
    )
    telemetry_interval: Duration = Field(
        default=60.0,
        description="How often a telemetry record is cut and published (the daemon: every minute).",
        examples=["1m"],
    )

    indexed_attributes: list[str] = Field(
        default_factory=list,
        description=(
            "OTLP spans: attribute keys that become X-Ray annotations (searchable in filter expressions); "
            "other attributes go to metadata. Resource attributes are named `otel.resource.<key>`."
        ),
        examples=[["order.id", "tenant", "otel.resource.deployment.environment"]],
    )
    index_all_attributes: bool = Field(
        default=False,
        description="OTLP spans: every scalar attribute becomes an annotation (X-Ray indexes at most 50 per trace).",
        examples=[False],
    )
    skip_timestamp_validation: bool = Field(
        default=False,
        description=(
            "OTLP spans: send spans whose trace id does not start with a plausible time (random W3C ids) instead "
            "of dead-lettering them. X-Ray reads the first 32 bits as the trace's start time."
        ),
        examples=[False],
    )

    @field_validator("resource_arn")
    @classmethod
    def _check_resource_arn(cls, value: str | None) -> str | None:
        if value is not None and not _RESOURCE_ARN_RE.match(value):
            raise ValueError(f"{value!r} is not an ARN (arn:aws:SERVICE:REGION:ACCOUNT:RESOURCE)")
        return value

    @field_validator("telemetry_interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        if value < 1:
            raise ValueError("telemetry_interval must be at least 1s")
        return value


def _document(record: Any) -> str:
    """The document of an X-Ray segment record (span records are converted by `XRayOutput._converted`)."""
    raw = record.get("raw") if type(record) is dict else None
    if type(raw) is bytes:
        return raw.decode("utf-8")
    if type(raw) is str:
        return raw
    return orjson.dumps(record, default=json_default).decode()


def _has_readable_id(document: str) -> bool:
    try:
        parsed = orjson.loads(document)
    except orjson.JSONDecodeError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("id"), str)


class XRayOutput(Output):
    type_name: ClassVar[str] = "xray"
    description: ClassVar[str] = "Sends trace segments to AWS X-Ray (PutTraceSegments), buffered and retried."
    Config: ClassVar[type[XRayOutputConfig]] = XRayOutputConfig
    accepts: ClassVar[frozenset[str]] = frozenset((TRACES,))
    limits = xray_limits.LIMITS
    default_batch_timeout: ClassVar[float] = xray_limits.IDLE_FLUSH_SECONDS

    config: XRayOutputConfig

    def __init__(self, config: XRayOutputConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.clients = AwsClients(config, ctx)
        self.requests = 0
        """PutTraceSegments calls made."""
        self.segments_sent = 0
        """Documents X-Ray accepted."""
        self.segments_unprocessed = 0
        """Documents X-Ray answered in UnprocessedTraceSegments (then retried or dead-lettered)."""
        self._limiter = RepeatLimiter(60.0)
        self._client: Any = None
        self._mapper = SegmentMapper(
            SegmentOptions(
                indexed_attributes=frozenset(config.indexed_attributes),
                index_all_attributes=config.index_all_attributes,
                skip_timestamp_validation=config.skip_timestamp_validation,
            )
        )
        self._documents: dict[int, tuple[Any, str | SpanRejected]] = {}
        self.spans_converted = 0
        """OTLP span records converted to segment documents."""
        self.spans_rejected = 0
        """OTLP span records that could not be converted (dead-lettered with the reason)."""
        self.telemetry = Telemetry(
            output=ctx.name,
            log=self.log,
            interval=config.telemetry_interval,
            host=ctx.host.host,
            instance_id=ctx.host.extra.get("instance_id"),
            resource_arn=config.resource_arn,
            own_stats=self._own_stats,
        )

    def _own_stats(self) -> Any | None:
        for stats in self.ctx.runtime_stats():
            if getattr(stats, "name", None) == self.ctx.name:
                return stats
        return None

    def counters(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "segments_sent": self.segments_sent,
            "segments_unprocessed": self.segments_unprocessed,
            "spans_converted": self.spans_converted,
            "spans_rejected": self.spans_rejected,
            "telemetry_records": self.telemetry.records_published,
        }

    async def start(self) -> None:
        if self.config.local_mode:
            self._enter_local_mode()
        self._client = await self.clients.client("xray")
        if self.config.telemetry:
            self.telemetry.start(self._client.put_telemetry_records)

    async def stop(self) -> None:
        client, self._client = self._client, None
        await self.telemetry.stop(client.put_telemetry_records if client is not None else None)
        await self.clients.close()

    def _enter_local_mode(self) -> None:
        """No instance metadata: the region must be known without it, and the instance-role provider goes."""
        session = self.clients.session
        region = (
            self.config.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or session.get_config_variable("region")
        )
        if not region:
            raise ValueError(
                f"xray output {self.ctx.name!r}: local_mode needs a region from `region:`, AWS_REGION or the "
                "profile (instance metadata is not asked)"
            )
        session.get_component("credential_provider").remove("iam-role")

    def record_size(self, record: Any) -> int:
        if is_span_record(record):
            converted = self._converted(record)
            return len(converted.encode("utf-8")) if type(converted) is str else 0  # rejected: dropped in send
        raw = record.get("raw") if type(record) is dict else None
        if type(raw) is bytes:
            return len(raw)
        if type(raw) is str:
            return len(raw.encode("utf-8", "surrogatepass"))
        return len(orjson.dumps(record, default=json_default))

    def _converted(self, record: dict[str, Any]) -> str | SpanRejected:
        """A span record's document (or why it has none), converted once between sizing and sending."""
        key = id(record)
        cached = self._documents.get(key)
        if cached is not None and cached[0] is record:
            return cached[1]
        result: str | SpanRejected
        try:
            result = self._mapper.convert(record)
        except SpanRejected as exc:
            result = exc
        if len(self._documents) >= DOCUMENT_CACHE_SIZE:
            del self._documents[next(iter(self._documents))]  # the oldest: its record was sent or dropped
        self._documents[key] = (record, result)
        return result

    async def write(self, batch: Batch) -> None:
        """Deliver the whole batch once or raise (for callers outside the driver, which uses `send`)."""
        raise_unless_delivered(await self.send(batch))

    async def send(self, batch: Batch) -> SendResult:
        records = batch.records
        if not records:
            return SendResult.ok()
        outcomes = [Outcome.DROP] * len(records)
        reasons = [""] * len(records)
        documents: list[str] = []
        ids: list[str | None] = []
        indices: list[int] = []
        documents_cache = self._documents
        for i, record in enumerate(records):
            if is_span_record(record):
                converted = self._converted(record)
                documents_cache.pop(id(record), None)
                if type(converted) is not str:
                    self.spans_rejected += 1
                    reasons[i] = f"invalid_span: {converted}"
                    continue
                if len(converted) > xray_limits.MAX_DOCUMENT_BYTES.value and (
                    len(converted.encode("utf-8")) > xray_limits.MAX_DOCUMENT_BYTES.value
                ):
                    self.spans_rejected += 1
                    reasons[i] = f"record_too_large: segment document over {xray_limits.MAX_DOCUMENT_BYTES.value} bytes"
                    continue
                self.spans_converted += 1
                documents.append(converted)
                ids.append(record.get("span_id"))
            else:
                try:
                    documents.append(_document(record))
                except (UnicodeDecodeError, orjson.JSONEncodeError, TypeError) as exc:
                    reasons[i] = f"unsendable_document: {type(exc).__name__}: {exc}"
                    continue
                segment_id = record.get("id") if type(record) is dict else None
                ids.append(segment_id if isinstance(segment_id, str) else None)
            indices.append(i)
        if len(indices) == len(records):
            return await self._put(ids, documents)
        if not indices:
            return SendResult.partial(outcomes, reasons)
        result = await self._put(ids, documents)
        answers = result.per_record or [result.outcome] * len(indices)
        why = result.record_reasons or [result.reason] * len(indices)
        for i, outcome, reason in zip(indices, answers, why, strict=True):
            outcomes[i], reasons[i] = outcome, reason
        return SendResult.partial(outcomes, reasons, result.retry_after, result.throttled)

    async def _put(self, ids: list[str | None], documents: list[str]) -> SendResult:
        client = self._client or await self.clients.client("xray")
        self.requests += 1
        try:
            response = await client.put_trace_segments(TraceSegmentDocuments=documents)
        except (BotoCoreError, ClientError, OSError) as exc:  # OSError covers TimeoutError
            self.telemetry.connection_error(exc)
            return classify_aws_error(exc, action=ACTION, log=self.log)
        unprocessed = response.get("UnprocessedTraceSegments") or []
        if not unprocessed:
            self.segments_sent += len(documents)
            self.telemetry.sent += len(documents)
            return SendResult.ok()
        return self._per_record(ids, documents, unprocessed)

    def _per_record(self, ids: list[str | None], documents: list[str], unprocessed: list[dict[str, Any]]) -> SendResult:
        outcomes = [Outcome.OK] * len(documents)
        reasons = [""] * len(documents)
        by_id: dict[str, list[int]] = {}
        for i, segment_id in enumerate(ids):
            if segment_id is not None:
                by_id.setdefault(segment_id, []).append(i)
        anonymous: list[tuple[Outcome, str]] = []
        for entry in unprocessed:
            code = str(entry.get("ErrorCode") or "Unknown")
            message = entry.get("Message")
            outcome = Outcome.RETRY if code in RETRYABLE_SEGMENT_ERRORS or "Throttl" in code else Outcome.DROP
            reason = f"{code}: {message}" if message else code
            segment_id = entry.get("Id")
            # Documents sharing an id (an in-progress segment and its completion) share the answer.
            indices = by_id.get(segment_id, []) if segment_id else []
            if not indices:
                anonymous.append((outcome, reason))
            for i in indices:
                outcomes[i], reasons[i] = outcome, reason
        if anonymous:
            unreadable = [i for i, d in enumerate(documents) if outcomes[i] is Outcome.OK and not _has_readable_id(d)]
            for i, (outcome, reason) in zip(unreadable, anonymous, strict=False):
                outcomes[i], reasons[i] = outcome, reason
            if len(anonymous) > len(unreadable):
                self._log_unmatched(len(anonymous) - len(unreadable), anonymous[0][1])
        failed = sum(1 for o in outcomes if o is not Outcome.OK)
        self.segments_unprocessed += failed
        self.segments_sent += len(documents) - failed
        self.telemetry.rejected += failed
        self.telemetry.sent += len(documents) - failed
        self._log_unprocessed(failed, len(documents), next(r for r in reasons if r) if failed else "")
        return SendResult.partial(outcomes, reasons)

    def _log_unprocessed(self, failed: int, total: int, first: str) -> None:
        if not failed:
            return
        now, _, suppressed = self._limiter.check("unprocessed")
        if now:
            self.log.warning(
                "X-Ray did not process some segments; retrying or dead-lettering them by error code",
                extra=kv(
                    component=self.ctx.name, unprocessed=failed, of=total, first=first, repeats_suppressed=suppressed
                ),
            )

    def _log_unmatched(self, count: int, reason: str) -> None:
        now, _, _ = self._limiter.check("unmatched")
        if now:
            self.log.error(
                "X-Ray reported unprocessed segments without an id that match no document; treated as accepted",
                extra=kv(component=self.ctx.name, entries=count, reason=reason),
            )
