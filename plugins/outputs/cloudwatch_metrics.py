"""`cloudwatch_metrics` output: metric records to Amazon CloudWatch with PutMetricData.

A batch (at most 1,000 records and an estimated 1 MB, the driver's job) is
turned into datums (`cloudwatch_metrics_datums.py`): records CloudWatch would
reject are dead-lettered one by one with their reason instead of failing the
whole request; the rest are packed into requests of one namespace each, within
the API's limits (`cloudwatch_metrics_limits.py`), a record's datums always in
one request. Each request's outcome applies to its records: a throttled or
failed request is retried by the driver for its records only.

Distributions go as Values/Counts (CloudWatch computes percentiles from them)
or, with `distribution: statistic_set`, as StatisticValues; never as an
average. Points aggregated over less than a minute are stored at high
resolution (`StorageResolution: 1`) unless `storage_resolution` says
otherwise.

`append_dimensions` (`{aws:InstanceId}`, `{aws:InstanceType}`,
`{aws:ImageId}`, `{aws:AutoScalingGroupName}` or literal values) are resolved
once at start from instance metadata (IMDSv2, at `metadata_endpoint`) and EC2
DescribeTags (`cloudwatch_metrics_dimensions.py`).

For the EMF path (metrics as EMF log events through a `cloudwatch_logs`
output) see the `metrics_to_emf` processor.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import METRICS, Batch
from collector.log import RepeatLimiter, kv
from collector.send_result import Outcome, PermanentError, RetryableError, SendResult
from collector_plugins.common.aws.errors import classify_aws_error
from collector_plugins.common.aws.session import AwsClients
from collector_plugins.common.aws.settings import AwsSettings
from collector_plugins.outputs.cloudwatch_metrics_datums import (
    DatumBuilder,
    InvalidRecord,
    estimate,
    pack,
    request_overhead,
)
from collector_plugins.outputs.cloudwatch_metrics_dimensions import FROM_TAGS, placeholder, resolve
from collector_plugins.outputs.cloudwatch_metrics_limits import LIMITS
from collector_plugins.outputs.cloudwatch_metrics_options import (
    DatumSettings,
    Dimensions,
    DropDimensions,
    MetadataEndpoint,
    Namespace,
    check_append_dimensions,
)

ACTION = "cloudwatch:PutMetricData"


class CloudWatchMetricsConfig(AwsSettings, OutputConfig, DatumSettings):
    type: Literal["cloudwatch_metrics"] = Field(
        description="Sends metrics to Amazon CloudWatch.", examples=["cloudwatch_metrics"]
    )
    namespace: Namespace
    namespace_from_tag: str | None = Field(
        None,
        description=(
            "Take each metric's namespace from this tag when it has it (the tag is then not a dimension), e.g. "
            "`namespace` for metrics from the `emf` input; else `namespace`."
        ),
        examples=["namespace", None],
    )
    dimensions: Dimensions
    drop_dimensions: DropDimensions
    append_dimensions: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Dimensions added to every metric that does not have them: a literal value, or `{aws:InstanceId}`, "
            "`{aws:InstanceType}`, `{aws:ImageId}` (instance metadata) or `{aws:AutoScalingGroupName}` (EC2 "
            "DescribeTags; left out when the instance is in no group)."
        ),
        examples=[{"InstanceId": "{aws:InstanceId}", "AutoScalingGroupName": "{aws:AutoScalingGroupName}"}],
    )
    metadata_endpoint: MetadataEndpoint
    distribution: Literal["values", "statistic_set"] = Field(
        "values",
        description=(
            "How distributions (timers, histograms) are sent: `values` (Values and Counts, at most 150 per datum; "
            "percentiles available) or `statistic_set` (SampleCount, Sum, Minimum, Maximum; cheaper, no percentiles)."
        ),
        examples=["values", "statistic_set"],
    )
    storage_resolution: Literal["auto", 1, 60] = Field(
        "auto",
        description=(
            "`auto`: high resolution (1 s) for points aggregated over less than 60 s, standard otherwise; "
            "1 or 60: always that."
        ),
        examples=["auto", 60],
    )

    @field_validator("append_dimensions")
    @classmethod
    def _check_append(cls, value: dict[str, str]) -> dict[str, str]:
        return check_append_dimensions(value, ec2_tags=True)


class CloudWatchMetricsOutput(Output):
    type_name: ClassVar[str] = "cloudwatch_metrics"
    description: ClassVar[str] = "Sends metrics to Amazon CloudWatch (PutMetricData), distributions as values."
    Config: ClassVar[type[CloudWatchMetricsConfig]] = CloudWatchMetricsConfig
    accepts: ClassVar[frozenset[str]] = frozenset({METRICS})
    limits = LIMITS
    default_batch_timeout: ClassVar[float] = 1.0

    config: CloudWatchMetricsConfig

    def __init__(self, config: CloudWatchMetricsConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.clients: AwsClients | None = None
        self.builder: DatumBuilder | None = None
        self._builder(appended=config.literal_dimensions())
        self._resolved = not any(placeholder(v) for v in config.append_dimensions.values())
        self._limiter = RepeatLimiter(interval=60.0)
        self.requests = 0
        self.datums = 0
        self.invalid_records = 0

    def _builder(self, appended: dict[str, str]) -> None:
        self.builder = DatumBuilder(self.config.datum_options(appended))

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.clients = AwsClients(self.config, self.ctx)
        if not self._resolved:
            await self._resolve_dimensions()

    async def _resolve_dimensions(self) -> None:
        assert self.clients is not None
        wanted = self.config.append_dimensions
        needs_tags = any(placeholder(v) in FROM_TAGS for v in wanted.values())
        ec2 = await self.clients.client("ec2") if needs_tags else None
        appended = await resolve(wanted, self.config.metadata_endpoint, ec2)
        self._builder(appended)
        self._resolved = True
        self.log.info(
            "append_dimensions resolved",
            extra=kv(component=self.ctx.name, **{k: appended.get(k, "(none)") for k in wanted}),
        )

    async def stop(self) -> None:
        if self.clients is not None:
            await self.clients.close()
            self.clients = None

    # -- what the driver uses --------------------------------------------------------------------

    def record_size(self, record: Any) -> int:
        assert self.builder is not None
        try:
            _, datums = self.builder.datums(record, time.time())
        except InvalidRecord:
            return 0  # dead-lettered by send, with its reason
        return sum(estimate(d) for d in datums)

    def counters(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "datums": self.datums,
            "invalid_records": self.invalid_records,
            "unknown_units": self.builder.unknown_units if self.builder is not None else 0,
        }

    def classify(self, exc: Exception) -> SendResult:
        return classify_aws_error(exc, action=ACTION, log=self.log, limiter=self._limiter)

    async def write(self, batch: Batch) -> None:
        """Send without the driver (tests, tools): raise unless every record was accepted."""
        result = await self.send(batch)
        if result.outcome is Outcome.RETRY:
            raise RetryableError(result.reason, result.retry_after, result.throttled)
        if result.outcome is Outcome.DROP:
            raise PermanentError(result.reason)
        if result.per_record is not None and any(o is not Outcome.OK for o in result.per_record):
            reasons = sorted(set(result.record_reasons or ()) - {""})
            raise PermanentError(f"records not accepted: {', '.join(reasons)}")

    async def send(self, batch: Batch) -> SendResult:
        if self.clients is None:
            self.clients = AwsClients(self.config, self.ctx)
        if not self._resolved:
            await self._resolve_dimensions()
        assert self.builder is not None
        records = batch.records
        outcomes = [Outcome.OK] * len(records)
        reasons = [""] * len(records)
        items = []
        now = time.time()
        for index, record in enumerate(records):
            try:
                namespace, datums = self.builder.datums(record, now)
            except InvalidRecord as exc:
                outcomes[index], reasons[index] = Outcome.DROP, exc.reason
                self._invalid(exc, record)
                continue
            items.append((index, namespace, datums))
        max_events, max_bytes = LIMITS.max_events.value, LIMITS.max_bytes.value  # type: ignore[union-attr]
        retry_after: float | None = None
        stop: SendResult | None = None  # a retryable failure: the rest of this send waits for the retry
        if items:
            client = await self.clients.client("cloudwatch")
            for request in pack(items, max_events, max_bytes):
                if stop is None:
                    try:
                        await client.put_metric_data(Namespace=request.namespace, MetricData=request.datums)
                        self.requests += 1
                        self.datums += len(request.datums)
                        continue
                    except Exception as exc:
                        result = self.classify(exc)
                    if result.outcome is Outcome.RETRY:
                        stop = result  # throttled or down: more requests now would only add to it
                else:
                    result = stop
                for index in request.records:
                    outcomes[index], reasons[index] = result.outcome, result.reason
                if result.retry_after is not None:
                    retry_after = max(retry_after or 0.0, result.retry_after)
        throttled = stop is not None and stop.throttled
        if all(o is Outcome.OK for o in outcomes):
            return SendResult.ok()
        if all(o is Outcome.RETRY for o in outcomes) and len(set(reasons)) == 1:
            return SendResult(Outcome.RETRY, reasons[0], retry_after, throttled=throttled)
        if all(o is Outcome.DROP for o in outcomes) and len(set(reasons)) == 1:
            return SendResult.drop(reasons[0])
        return SendResult.partial(outcomes, reasons, retry_after, throttled)

    def _invalid(self, exc: InvalidRecord, record: Any) -> None:
        self.invalid_records += 1
        now, _, suppressed = self._limiter.check("invalid", exc.reason)
        if now:
            self.log.error(
                "metric CloudWatch would reject was dead-lettered",
                extra=kv(
                    component=self.ctx.name,
                    reason=exc.reason,
                    error=str(exc),
                    metric=getattr(record, "name", "?"),
                    repeats_suppressed=suppressed,
                ),
            )


__all__ = ["CloudWatchMetricsConfig", "CloudWatchMetricsOutput", "request_overhead"]
