"""`metrics_to_emf` processor: metric records -> Embedded Metric Format documents (the EMF path to CloudWatch).

The alternative to the `cloudwatch_metrics` output: metrics become log records
marked `_emf: true` that a `cloudwatch_logs` output sends with the
`x-amzn-logs-format: json/emf` header; CloudWatch Logs extracts the metrics
(no PutMetricData calls, and the documents stay queryable as logs).

Records of one namespace, time and dimension set share a document: one
directive whose dimension set is the record's dimensions, every metric a root
member. Counters and gauges are numbers, sets their member count, and
distributions statistic-set objects with their Values and Counts
(`{"Values", "Counts", "Count", "Sum", "Min", "Max"}`, the form the CloudWatch
agent writes; `distribution: statistic_set` leaves the values out). Every
document then passes through the same checker as the `emf` input's, which
splits documents of more than 100 metrics or values.

Names, dimensions and values are checked with the `cloudwatch_metrics` output's
rules (the same options too): a record CloudWatch would reject is dropped and
counted in the loss ledger with its reason, once-a-minute logged.
`append_dimensions` takes literal values and `{aws:InstanceId}`,
`{aws:InstanceType}`, `{aws:ImageId}` from instance metadata (resolved at start).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator

from collector.api import ComponentContext, Processor, ProcessorConfig
from collector.events import LOGS, METRICS, Batch, Metric
from collector.log import RepeatLimiter, kv
from collector_plugins.common.metrics.emf import EmfChecker
from collector_plugins.outputs.cloudwatch_metrics_datums import (
    DatumBuilder,
    InvalidRecord,
    distribution_of,
    number,
    set_size,
)
from collector_plugins.outputs.cloudwatch_metrics_dimensions import resolve
from collector_plugins.outputs.cloudwatch_metrics_options import (
    DatumSettings,
    Dimensions,
    DropDimensions,
    MetadataEndpoint,
    Namespace,
    check_append_dimensions,
)

GroupKey = tuple[str, int, tuple[tuple[str, str], ...]]


class MetricsToEmfConfig(ProcessorConfig, DatumSettings):
    type: Literal["metrics_to_emf"] = Field(
        description="Turns metric records into EMF log records.", examples=["metrics_to_emf"]
    )
    namespace: Namespace
    namespace_from_tag: str | None = Field(
        None,
        description="Take each metric's namespace from this tag when it has it (the tag is then not a dimension).",
        examples=["namespace", None],
    )
    dimensions: Dimensions
    drop_dimensions: DropDimensions
    append_dimensions: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Dimensions added to every metric that does not have them: a literal value, or `{aws:InstanceId}`, "
            "`{aws:InstanceType}`, `{aws:ImageId}` from instance metadata."
        ),
        examples=[{"InstanceId": "{aws:InstanceId}"}],
    )
    metadata_endpoint: MetadataEndpoint
    distribution: Literal["values", "statistic_set"] = Field(
        "values",
        description=(
            "Distributions as statistic sets with their Values and Counts (`values`, percentiles available) or "
            "as statistic sets only (`statistic_set`)."
        ),
        examples=["values", "statistic_set"],
    )
    storage_resolution: Literal["auto", 1, 60] = Field(
        "auto",
        description="`auto`: high resolution for points aggregated over less than 60 s; 1 or 60: always that.",
        examples=["auto", 60],
    )

    @field_validator("append_dimensions")
    @classmethod
    def _check_append(cls, value: dict[str, str]) -> dict[str, str]:
        return check_append_dimensions(value, ec2_tags=False)


class MetricsToEmf(Processor):
    type_name: ClassVar[str] = "metrics_to_emf"
    description: ClassVar[str] = "Turns metric records into EMF log records for a cloudwatch_logs output."
    Config: ClassVar[type[MetricsToEmfConfig]] = MetricsToEmfConfig
    accepts: ClassVar[frozenset[str]] = frozenset({METRICS})
    emits: ClassVar[frozenset[str]] = frozenset({LOGS})
    # It only reads the metrics and returns new log records: fan-out needs no copy for it or its branch.
    mutates_records: ClassVar[bool] = False
    forwards_records: ClassVar[bool] = False

    config: MetricsToEmfConfig

    def __init__(self, config: MetricsToEmfConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        literal = config.literal_dimensions()
        self.builder = self._builder(literal)
        self._resolved = len(literal) == len(config.append_dimensions)
        self.checker = EmfChecker()
        self._limiter = RepeatLimiter(interval=60.0)
        self.documents = 0
        self.invalid_records = 0

    def _builder(self, appended: dict[str, str]) -> DatumBuilder:
        return DatumBuilder(self.config.datum_options(appended))

    async def start(self) -> None:
        if not self._resolved:
            appended = await resolve(self.config.append_dimensions, self.config.metadata_endpoint, None)
            self.builder = self._builder(appended)
            self._resolved = True

    def counters(self) -> dict[str, float]:
        return {"documents": self.documents, "invalid_records": self.invalid_records}

    def process(self, batch: Batch) -> Batch | None:
        if not self._resolved:
            raise RuntimeError("metrics_to_emf used before start resolved append_dimensions")
        records = self.encode(batch.records, time.time())
        if not records:
            return None
        return Batch(LOGS, records, sum(len(r["message"]) for r in records), batch.ack)

    def encode(self, metrics: list[Metric], now: float) -> list[dict[str, Any]]:
        """EMF log records for metric records (documents grouped by namespace, time and dimensions)."""
        groups: dict[GroupKey, list[tuple[dict[str, Any], Any]]] = {}
        invalid: dict[str, int] = {}
        for metric in metrics:
            try:
                namespace, header = self.builder.header(metric, now)
                value = self._value(metric)
            except InvalidRecord as exc:
                invalid[exc.reason] = invalid.get(exc.reason, 0) + 1
                continue
            if value is None:
                continue  # a distribution that observed nothing
            dims = tuple((d["Name"], d["Value"]) for d in header.get("Dimensions", ()))
            stamp = int(header["Timestamp"].timestamp() * 1000)
            groups.setdefault((namespace, stamp, dims), []).append((header, value))
        if invalid:
            self._invalid(invalid)
        out: list[dict[str, Any]] = []
        conflicts = 0
        for (namespace, stamp, dims), members in groups.items():
            docs, clashing = _documents(namespace, stamp, dims, members)
            conflicts += clashing
            for doc in docs:
                for piece in self.checker.check(doc, stamp).documents:
                    out.append({"timestamp": stamp / 1000.0, "message": orjson.dumps(piece).decode(), "_emf": True})
        if conflicts:
            self._invalid({"metric_named_like_a_dimension": conflicts})
        self.documents += len(out)
        return out

    def _value(self, metric: Metric) -> Any:
        kind = metric.type
        if kind == "set":
            return set_size(metric.value)
        if kind != "distribution":
            return number(metric.value)
        dist = distribution_of(metric.value)
        if dist.count <= 0:
            return None
        value: dict[str, Any] = {
            "Count": number(dist.count),
            "Sum": number(dist.sum),
            "Min": number(dist.min),
            "Max": number(dist.max),
        }
        if self.config.distribution == "values" and len(dist):
            pairs = dist.pairs()
            value = {"Values": [number(v) for v, _ in pairs], "Counts": [c for _, c in pairs], **value}
        return value

    def _invalid(self, reasons: dict[str, int]) -> None:
        for reason, count in reasons.items():
            self.invalid_records += count
            self.ctx.loss(reason, count)
        now, _, suppressed = self._limiter.check("invalid")
        if now:
            self.log.warning(
                "metrics CloudWatch would reject were dropped",
                extra=kv(component=self.ctx.name, repeats_suppressed=suppressed, **reasons),
            )


def _documents(
    namespace: str, stamp: int, dims: tuple[tuple[str, str], ...], members: list[tuple[dict[str, Any], Any]]
) -> tuple[list[dict[str, Any]], int]:
    """Documents for one group, and how many metrics could not be expressed (named like a dimension).

    A metric named like an earlier one of the group (a counter and a distribution of the same name) goes
    to another document: a document holds one value per name.
    """
    reserved = {k for k, _ in dims} | {"_aws"}
    keys = [k for k, _ in dims]
    docs: list[dict[str, Any]] = []
    conflicts = 0
    for header, value in members:
        name = header["MetricName"]
        if name in reserved:
            conflicts += 1
            continue
        doc = next((d for d in docs if name not in d), None)
        if doc is None:
            directive = {"Namespace": namespace, "Dimensions": [keys], "Metrics": []}
            doc = {**dict(dims), "_aws": {"Timestamp": stamp, "CloudWatchMetrics": [directive]}}
            docs.append(doc)
        definition: dict[str, Any] = {"Name": name}
        if "Unit" in header:
            definition["Unit"] = header["Unit"]
        if header.get("StorageResolution") == 1:
            definition["StorageResolution"] = 1
        doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].append(definition)
        doc[name] = value
    return docs, conflicts
