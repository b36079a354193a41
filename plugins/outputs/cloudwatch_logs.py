"""`cloudwatch_logs`: log records to CloudWatch Logs with PutLogEvents.

The driver hands `send` a batch no larger than one PutLogEvents request
(`record_size` counts each record as the API does: UTF-8 message bytes plus
26 per event). `send` then

1. routes each record to its log group and stream (record templates over the
   record, the host facts and the time; names made valid for the API) and
   apart by format: EMF documents go in requests of their own, which carry
   `x-amzn-logs-format: json/emf` so CloudWatch extracts their metrics;
2. turns each stream's records into requests that obey every PutLogEvents rule
   (`cloudwatch_logs_requests.py`: sorted, split by bytes, count and 24 h span,
   long messages split into marked parts);
3. sends them one after another. A missing group or stream (never created,
   or deleted while we run) is created and the request sent once more;
   events the API reports as too old, too new or expired are given back as
   dead letters with that reason; throttling (THROTTLED), 5xx and connection
   errors stop the send and hand every unsent record back for a retry with
   backoff; permission errors are logged once with the missing IAM action and
   the records dead-lettered.

What is known about groups and streams, and their creation, is
`cloudwatch_logs_resources.py`: a creation call that fails (throttled, say)
ends the send, and the retry resumes at that very call, not at PutLogEvents.

The result is per record (`SendResult.partial`) whenever the outcomes differ,
so the driver resends only what was not accepted. No sequence tokens: the API
ignores them now, so concurrent requests to one stream are safe.
"""

from __future__ import annotations

import contextvars
import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import orjson
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, field_validator, model_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter, kv
from collector.send_result import Outcome, SendResult
from collector.units import Duration, Size
from collector_plugins.common.aws.errors import classify_aws_error, error_code
from collector_plugins.common.aws.metadata import template_host_facts
from collector_plugins.common.aws.session import AwsClients
from collector_plugins.common.aws.settings import AwsSettings
from collector_plugins.common.record_templates import RecordTemplate, check_record_template
from collector_plugins.outputs.aws_records import raise_unless_delivered
from collector_plugins.outputs.cloudwatch_logs_limits import (
    EVENT_OVERHEAD,
    LIMITS,
    MAX_AGE_MS,
    MAX_BATCH_SPAN_MS,
    MAX_EVENT_BYTES,
    MAX_FUTURE_MS,
    MAX_GROUP_NAME,
    MAX_STREAM_NAME,
    RETENTION_DAYS,
)
from collector_plugins.outputs.cloudwatch_logs_requests import MIN_MESSAGE_BYTES, EventPlanner, EventRequest
from collector_plugins.outputs.cloudwatch_logs_resources import LogResources

EMF_HEADER = ("x-amzn-logs-format", "json/emf")
EMF_MARK = "_emf"
"""A record is an EMF document when `record["_emf"] is True` (the convention of the `emf` input and the
`metrics_to_emf` processor), or when the output has `emf: true`. Its `message` is sent verbatim."""

_dumps = orjson.dumps
_GROUP_INVALID = re.compile(r"[^A-Za-z0-9_\-./#]")
_STREAM_INVALID = re.compile(r"[:*]")
# Read by the request hook, per task: whether the PutLogEvents call being made carries EMF documents, and
# the JSON body encoded for it (see `_prepare_request`).
_SENDING_EMF: contextvars.ContextVar[bool] = contextvars.ContextVar("cloudwatch_logs_emf", default=False)
_BODY: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("cloudwatch_logs_body", default=None)


class CloudWatchLogsConfig(AwsSettings, OutputConfig):
    type: Literal["cloudwatch_logs"] = Field(
        description="Sends log records to Amazon CloudWatch Logs.", examples=["cloudwatch_logs"]
    )
    log_group: str = Field(
        min_length=1,
        description=(
            "Log group name; a record template: host facts (`{host}`, `{instance_id}`), record fields "
            "(`{k8s.namespace}`, `{container_name}`), date parts of the record's time (`{%Y}` `{%m}` `{%d}`)."
        ),
        examples=["/ec2/{host}/app", "/eks/{k8s.namespace}"],
    )
    log_stream: str = Field(
        "{host}",
        min_length=1,
        description="Log stream name; a record template like `log_group`.",
        examples=["{host}", "{container_name}-{%Y}-{%m}-{%d}"],
    )
    codec: Literal["text", "json"] = Field(
        "text",
        description=(
            "`text`: the record's `message` (bytes decoded as UTF-8; a record without one as JSON); "
            "`json`: the whole record as one JSON document."
        ),
        examples=["text", "json"],
    )
    emf: bool = Field(
        False,
        description=(
            "Treat every record's message as an Embedded Metric Format document (else only records marked "
            "`_emf: true`); EMF requests carry `x-amzn-logs-format: json/emf` so CloudWatch extracts metrics."
        ),
        examples=[False],
    )
    missing_value: str = Field(
        "unknown",
        min_length=1,
        description="What a template renders for a record field that is missing or empty.",
        examples=["unknown"],
    )
    create_log_group: bool = Field(
        True,
        description="Create a missing log group (streams are always created when missing).",
        examples=[True],
    )
    retention_days: int | None = Field(
        None,
        description="Retention set on log groups this output creates; unset keeps logs for ever.",
        examples=[30],
    )
    kms_key_id: str | None = Field(
        None,
        description="ARN of a KMS key to encrypt log groups this output creates.",
        examples=["arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags put on log groups this output creates.",
        examples=[{"team": "platform"}],
    )
    log_group_class: Literal["STANDARD", "INFREQUENT_ACCESS"] | None = Field(
        None,
        description="Class of log groups this output creates (AWS default: STANDARD).",
        examples=["INFREQUENT_ACCESS"],
    )
    max_event_bytes: Size | None = Field(
        None,
        description=(
            "Largest event, message plus 26 bytes (at most the API's 1 MB: 1048576); longer messages are "
            "split into marked parts."
        ),
        examples=["256KiB"],
    )
    max_batch_span: Duration | None = Field(
        None,
        description="Largest time span between the oldest and newest event of one request (at most 24h).",
        examples=["1h"],
    )

    @field_validator("log_group", "log_stream")
    @classmethod
    def _check_template(cls, value: str) -> str:
        return check_record_template(value)

    @field_validator("retention_days")
    @classmethod
    def _check_retention(cls, value: int | None) -> int | None:
        if value is not None and value not in RETENTION_DAYS:
            raise ValueError(f"retention_days must be one of {', '.join(map(str, RETENTION_DAYS))}")
        return value

    @model_validator(mode="after")
    def _check_limits(self) -> CloudWatchLogsConfig:
        smallest = MIN_MESSAGE_BYTES + EVENT_OVERHEAD.value
        if self.max_event_bytes is not None and not smallest <= self.max_event_bytes <= MAX_EVENT_BYTES.value:
            raise ValueError(
                f"max_event_bytes must be between {smallest} and the API's limit of {MAX_EVENT_BYTES.value} "
                f"(see {MAX_EVENT_BYTES.source}, checked {MAX_EVENT_BYTES.checked})"
            )
        if self.batch.max_bytes is not None and self.batch.max_bytes < smallest:
            raise ValueError(f"batch.max_bytes must be at least {smallest} for CloudWatch Logs")
        limit_s = MAX_BATCH_SPAN_MS.value / 1000
        if self.max_batch_span is not None and not 0.001 <= self.max_batch_span <= limit_s:
            raise ValueError(
                f"max_batch_span must be between 1ms and the API's limit of 24h (see {MAX_BATCH_SPAN_MS.source}, "
                f"checked {MAX_BATCH_SPAN_MS.checked})"
            )
        return self


class _Destination:
    """One (log group, log stream, EMF or not) a send writes to."""

    __slots__ = ("emf", "group", "stream")

    def __init__(self, group: str, stream: str, emf: bool) -> None:
        self.group, self.stream, self.emf = group, stream, emf


def valid_group_name(name: str) -> str:
    """A log group name the API accepts: invalid characters become `_`, at most 512 characters."""
    return _GROUP_INVALID.sub("_", name)[: MAX_GROUP_NAME.value] or "_"


def valid_stream_name(name: str) -> str:
    """A log stream name the API accepts: `:` and `*` become `_`, at most 512 characters, valid UTF-8."""
    if not name.isascii():
        name = name.encode("utf-8", "replace").decode()  # a lone surrogate from a record field
    return _STREAM_INVALID.sub("_", name)[: MAX_STREAM_NAME.value] or "_"


class CloudWatchLogsOutput(Output):
    type_name: ClassVar[str] = "cloudwatch_logs"
    description: ClassVar[str] = (
        "Sends log records to Amazon CloudWatch Logs (PutLogEvents), creating groups and streams."
    )
    Config: ClassVar[type[CloudWatchLogsConfig]] = CloudWatchLogsConfig
    accepts: ClassVar[frozenset[str]] = frozenset({LOGS})
    limits = LIMITS
    default_batch_timeout: ClassVar[float] = 1.0

    config: CloudWatchLogsConfig

    def __init__(self, config: CloudWatchLogsConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        batch = config.batch
        self.planner = EventPlanner(
            codec=config.codec,
            max_events=min(LIMITS.max_events.value, batch.max_events or LIMITS.max_events.value),  # type: ignore[union-attr]
            max_bytes=min(LIMITS.max_bytes.value, batch.max_bytes or LIMITS.max_bytes.value),  # type: ignore[union-attr]
            max_event_bytes=config.max_event_bytes,
            max_span_ms=int(config.max_batch_span * 1000) if config.max_batch_span else MAX_BATCH_SPAN_MS.value,
        )
        self._compile_templates(ctx.host.as_dict())
        # The driver sizes every record: skip a call layer on that hot path.
        self.record_size = self.planner.record_size  # type: ignore[method-assign]
        self.clients: AwsClients | None = None
        self._region = "*"
        self._hooked_client: Any = None
        self._fast_body = False
        self._limiter = RepeatLimiter(interval=60.0)
        self.requests = 0
        self.events = 0
        self.split_records = 0
        self.empty_records = 0
        self.rejected = {"too_old": 0, "too_new": 0, "expired": 0}
        self.resources = LogResources(config, self._failed, self._group_created)

    def _compile_templates(self, host: dict[str, str]) -> None:
        missing = self.config.missing_value
        self._group_tpl = RecordTemplate(self.config.log_group, host, missing=missing)
        self._stream_tpl = RecordTemplate(self.config.log_stream, host, missing=missing)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.clients = AwsClients(self.config, self.ctx)
        templates = (self.config.log_group, self.config.log_stream)
        host = await template_host_facts(
            self.clients.session, templates, self.ctx.host.as_dict(), self.log, self.ctx.name
        )
        if host is not None:
            self._compile_templates(host)
        await self._logs()

    async def stop(self) -> None:
        if self.clients is not None:
            await self.clients.close()
            self.clients = None
            self._hooked_client = None

    async def _logs(self) -> Any:
        if self.clients is None:
            self.clients = AwsClients(self.config, self.ctx)
        # Requests are built valid by construction (EventPlanner); botocore's per-event validation would
        # cost as much as the serialisation itself.
        client = await self.clients.client("logs", parameter_validation=False)
        if client is not self._hooked_client:  # the hook belongs to the client every request goes through
            self._region = await self.clients.region()
            model = client.meta.service_model
            client.meta.events.register(f"before-call.{model.service_id.hyphenize()}.PutLogEvents", _prepare_request)
            self._fast_body = model.protocol == "json" and model.metadata.get("jsonVersion") == "1.1"
            self._hooked_client = client
        return client

    # -- what the driver uses --------------------------------------------------------------------

    def record_size(self, record: Any) -> int:  # replaced per instance by the planner's (see __init__)
        return self.planner.record_size(record)

    def counters(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "events": self.events,
            "split_records": self.split_records,
            "empty_records": self.empty_records,
            "rejected_too_old": self.rejected["too_old"],
            "rejected_too_new": self.rejected["too_new"],
            "rejected_expired": self.rejected["expired"],
            "groups_created": self.resources.groups_created,
            "streams_created": self.resources.streams_created,
        }

    def classify(self, exc: Exception) -> SendResult:
        return classify_aws_error(exc, action="logs:PutLogEvents", log=self.log, limiter=self._limiter)

    async def write(self, batch: Batch) -> None:
        """Send without the driver (tests, tools): raise unless every record was accepted."""
        raise_unless_delivered(await self.send(batch))

    async def send(self, batch: Batch) -> SendResult:
        records = batch.records
        if not records:
            return SendResult.ok()
        client = await self._logs()
        outcome = _Outcomes(len(records))
        stop: SendResult | None = None  # set once a retryable failure ends this send
        for dest, owners in self._route(records).items():
            recs = records if len(owners) == len(records) else [records[i] for i in owners]
            # An EMF document is the record's message, verbatim, whatever the codec.
            plan = self.planner.plan(recs, owners, codec="text" if dest.emf else None)
            if plan.empty_records:
                self.empty_records += plan.empty_records
                self.ctx.loss("empty_message", plan.empty_records)
            self.split_records += plan.split_records
            for request in plan.requests:
                if stop is not None:
                    outcome.mark(request.owners, Outcome.RETRY, stop.reason, stop.retry_after, stop.throttled)
                    continue
                result = await self._put(client, dest, request, outcome)
                if result is None:
                    continue
                outcome.mark(request.owners, result.outcome, result.reason, result.retry_after, result.throttled)
                if result.outcome is Outcome.RETRY:
                    stop = result
        return outcome.result()

    # -- routing ---------------------------------------------------------------------------------

    def _route(self, records: list[Any]) -> dict[_Destination, list[int]]:
        """Record indices by destination, order kept within each; names are made valid once per distinct name."""
        group_tpl, stream_tpl = self._group_tpl, self._stream_tpl
        n = len(records)
        if self.config.emf:
            emf: list[bool] | None = None
            all_emf = True
        else:
            emf = [r.get(EMF_MARK) is True for r in records]
            all_emf = all(emf)
            if all_emf or not any(emf):
                emf = None
        if group_tpl.static and stream_tpl.static and emf is None:
            dest = self._destination(group_tpl.render({}), stream_tpl.render({}), all_emf)
            return {dest: list(range(n))}
        groups = [group_tpl.render(r) for r in records] if not group_tpl.static else None
        streams = [stream_tpl.render(r) for r in records] if not stream_tpl.static else None
        fixed_group = group_tpl.render({}) if groups is None else ""
        fixed_stream = stream_tpl.render({}) if streams is None else ""
        by_key: dict[tuple[str, str, bool], list[int]] = {}
        for i in range(n):
            key = (
                groups[i] if groups is not None else fixed_group,
                streams[i] if streams is not None else fixed_stream,
                emf[i] if emf is not None else all_emf,
            )
            bucket = by_key.get(key)
            if bucket is None:
                by_key[key] = [i]
            else:
                bucket.append(i)
        return {self._destination(*key): owners for key, owners in by_key.items()}

    def _destination(self, group: str, stream: str, emf: bool) -> _Destination:
        return _Destination(valid_group_name(group), valid_stream_name(stream), emf)

    # -- the API calls ---------------------------------------------------------------------------

    async def _put(
        self, client: Any, dest: _Destination, request: EventRequest, outcome: _Outcomes
    ) -> SendResult | None:
        """Send one request; None when accepted (rejected events already marked), else the whole request's fate."""
        if self._fast_body:
            # The body, encoded here in one orjson call, replaces botocore's serialisation of the events
            # (a generic walk over every event's shape, the most expensive step of a request).
            body: bytes | None = _dumps(
                {"logGroupName": dest.group, "logStreamName": dest.stream, "logEvents": request.events}
            )
            events: list[dict[str, Any]] = []
        else:
            body, events = None, request.events
        token = _SENDING_EMF.set(dest.emf)
        body_token = _BODY.set(body)
        try:
            resources = self.resources
            for attempt in (1, 2):
                if resources.pending(dest):  # found missing before: create first, resuming where that stopped
                    failure = await resources.create(client, dest)
                    if failure is not None:
                        return failure
                try:
                    response = await client.put_log_events(
                        logGroupName=dest.group, logStreamName=dest.stream, logEvents=events
                    )
                    break
                except ClientError as exc:
                    if error_code(exc) != "ResourceNotFoundException" or attempt == 2:
                        return self._failed(exc, "logs:PutLogEvents", dest)
                    resources.stream_missing(dest)
                except (BotoCoreError, OSError, TimeoutError) as exc:
                    return self._failed(exc, "logs:PutLogEvents", dest)
        finally:
            _SENDING_EMF.reset(token)
            _BODY.reset(body_token)
        self.requests += 1
        self.events += len(request.events)
        rejected = response.get("rejectedLogEventsInfo")
        if rejected:
            self._rejected(rejected, request, dest, outcome)
        return None

    def _rejected(self, info: dict[str, int], request: EventRequest, dest: _Destination, outcome: _Outcomes) -> None:
        """Mark the events the API refused as dead letters with the reason it gave.

        The reference defines `tooOldLogEventEndIndex` / `expiredLogEventEndIndex` as exclusive ends and
        `tooNewLogEventStartIndex` as an inclusive start; emulators differ (moto reports the last too-old and
        the last too-new index). Events are sorted, so a reported range is also widened to every event beyond
        the documented window by our clock (14 days old, 2 hours ahead): a refused event is never taken for
        delivered, at worst an accepted one near the edge is also kept as a dead letter.
        """
        n = len(request.owners)
        ts = [e["timestamp"] for e in request.events]
        now = int(self.planner.clock() * 1000)
        ranges: list[tuple[str, int, int]] = []
        old_end = 0
        if "tooOldLogEventEndIndex" in info:
            old_end = min(n, max(info["tooOldLogEventEndIndex"], bisect_left(ts, now - MAX_AGE_MS.value)))
            ranges.append(("too_old", 0, old_end))
        if "expiredLogEventEndIndex" in info:
            ranges.append(("expired", old_end, min(info["expiredLogEventEndIndex"], n)))
        if "tooNewLogEventStartIndex" in info:
            start = min(info["tooNewLogEventStartIndex"], bisect_right(ts, now + MAX_FUTURE_MS.value))
            ranges.append(("too_new", max(start, 0), n))
        counts: dict[str, int] = {}
        for reason, start, end in ranges:
            if end > start:
                outcome.mark(request.owners[start:end], Outcome.DROP, f"rejected_{reason}: refused by PutLogEvents")
                counts[reason] = end - start
        for reason, count in counts.items():
            self.rejected[reason] += count
        log_now, _, suppressed = self._limiter.check(self.ctx.name, "rejected")
        if log_now and counts:
            fields: dict[str, Any] = {"component": self.ctx.name, "log_group": dest.group, "log_stream": dest.stream}
            fields.update({f"rejected_{k}": v for k, v in counts.items()})
            if suppressed:
                fields["repeats_suppressed"] = suppressed
            self.log.warning(
                "CloudWatch Logs refused events outside its time window; kept as dead letters", extra={"fields": fields}
            )

    def _group_created(self, group: str) -> None:
        self.log.info(
            "created log group",
            extra=kv(component=self.ctx.name, log_group=group, retention_days=self.config.retention_days),
        )

    def _failed(self, exc: BaseException, action: str, dest: _Destination) -> SendResult:
        stream_level = action in ("logs:PutLogEvents", "logs:CreateLogStream")
        return classify_aws_error(
            exc, action=action, log=self.log, resource=self._arn(dest, stream_level), limiter=self._limiter
        )

    def _arn(self, dest: _Destination, stream: bool) -> str:
        """The ARN a policy must allow (account unknown here: `*`)."""
        region = self._region
        partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
        arn = f"arn:{partition}:logs:{region}:*:log-group:{dest.group}"
        return f"{arn}:log-stream:{dest.stream}" if stream else f"{arn}:*"


class _Outcomes:
    """Per-record outcomes of one send, allocated only when something was not accepted."""

    __slots__ = ("n", "outcomes", "reasons", "retry_after", "throttled")

    _RANK: ClassVar[dict[Outcome, int]] = {Outcome.OK: 0, Outcome.DROP: 1, Outcome.RETRY: 2}

    def __init__(self, n: int) -> None:
        self.n = n
        self.outcomes: list[Outcome] | None = None
        self.reasons: list[str] = []
        self.retry_after: float | None = None
        self.throttled = False

    def mark(
        self,
        owners: Sequence[int],
        outcome: Outcome,
        reason: str,
        retry_after: float | None = None,
        throttled: bool = False,
    ) -> None:
        """A record keeps its worst outcome (a part to retry outranks a part dropped, which outranks OK)."""
        if outcome is Outcome.OK:
            return
        if self.outcomes is None:
            self.outcomes = [Outcome.OK] * self.n
            self.reasons = [""] * self.n
        rank = self._RANK
        for i in owners:
            if rank[outcome] > rank[self.outcomes[i]]:
                self.outcomes[i] = outcome
                self.reasons[i] = reason
        if retry_after is not None:
            self.retry_after = max(self.retry_after or 0.0, retry_after)
        self.throttled = self.throttled or throttled

    def result(self) -> SendResult:
        if self.outcomes is None:
            return SendResult.ok()
        first = self.outcomes[0]
        if all(o is first for o in self.outcomes) and len(set(self.reasons)) == 1:
            if first is Outcome.RETRY:
                if self.throttled:
                    return SendResult.throttle(self.reasons[0], self.retry_after)
                return SendResult.retry(self.reasons[0], self.retry_after)
            return SendResult.drop(self.reasons[0])
        return SendResult.partial(self.outcomes, self.reasons, self.retry_after, self.throttled)


def _prepare_request(params: dict[str, Any], **_: Any) -> None:
    """botocore `before-call` hook on PutLogEvents, after serialisation and before signing.

    - Puts in the body this output encoded itself (JSON 1.1, the same document botocore would produce
      for the same parameters; the client was called with an empty event list in its place). Used only
      while the service model says the protocol is JSON 1.1.
    - Marks a request of EMF documents with `x-amzn-logs-format: json/emf` so CloudWatch extracts metrics.
    """
    body = _BODY.get()
    if body is not None:
        params["body"] = body
    if _SENDING_EMF.get():
        params["headers"][EMF_HEADER[0]] = EMF_HEADER[1]
