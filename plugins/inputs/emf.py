"""`emf` input: Embedded Metric Format documents over TCP and UDP, as the aws-embedded-metrics libraries send them.

Each newline-terminated JSON document (TCP: one connection per process, many
documents; UDP: a document per datagram) is checked against the EMF
specification (`plugins/common/metrics/emf.py`): documents CloudWatch would
silently ignore are split or repaired where that is safe, and what cannot be
saved is counted in the loss ledger with its reason. Documents go on as log
records marked `_emf: true` (see /work/notes/emf_marker.md: a `cloudwatch_logs`
output sends them with the `x-amzn-logs-format: json/emf` header, and CloudWatch
extracts the metrics) and, with `emit: [metrics]`, also as metric records
aggregated per interval (each value of a metric is one observation of a
distribution, as CloudWatch treats them).

A document passed on unchanged keeps its original text; only split or repaired
documents are serialized again. Stream connections get backpressure (a read
waits for its batch to be taken); UDP bursts are handed on with `try_emit`.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator, model_validator

from collector.api import ComponentContext, InputConfig, InputContext
from collector.events import LOGS, METRICS, Batch, Metric
from collector.log import RepeatLimiter, kv
from collector.units import Duration, Size
from collector_plugins.common.framing import LineSplitter
from collector_plugins.common.listen import Scheme
from collector_plugins.common.listener_options import (
    IdleTimeout,
    ListenerOptions,
    MaxConnections,
    MaxInFlightBytes,
)
from collector_plugins.common.listeners import ListeningInput, emit_received
from collector_plugins.common.metrics.aggregator import Aggregator, check_interval
from collector_plugins.common.metrics.batch import metric_batch
from collector_plugins.common.metrics.emf import EmfChecker, to_metrics
from collector_plugins.common.stream_server import Connection

STOP_TIMEOUT = 5.0
# The largest CloudWatch Logs event (and so EMF document).
MAX_DOCUMENT_BYTES = 1024 * 1024


class EmfConfig(InputConfig, ListenerOptions):
    listen_scheme: ClassVar[Scheme] = "tcp"

    type: Literal["emf"] = Field(description="Receives Embedded Metric Format documents.", examples=["emf"])
    listen: list[str] = Field(
        default=["tcp://127.0.0.1:25888", "udp://127.0.0.1:25888"],
        min_length=1,
        description=(
            "Addresses to listen on: `tcp://HOST:PORT`, `udp://HOST:PORT`, `unix:///PATH`, `unixgram:///PATH`. "
            "Without a scheme TCP is meant. 25888 is where the aws-embedded-metrics libraries send by default."
        ),
        examples=[["tcp://127.0.0.1:25888", "udp://127.0.0.1:25888"]],
    )
    emit: list[Literal["logs", "metrics"]] = Field(
        default=["logs"],
        min_length=1,
        description=(
            "`logs`: the documents as log records marked `_emf: true` (CloudWatch Logs extracts the metrics); "
            "`metrics`: the metric values as metric records, aggregated per `interval`. Both may be given."
        ),
        examples=[["logs"], ["logs", "metrics"]],
    )
    interval: Duration = Field(
        default=60.0,
        description="`emit: [metrics]`: the aggregation interval (as for `statsd`: 1s to 1h, lining up with minutes).",
        examples=["60s", "10s"],
    )
    max_series: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="`emit: [metrics]`: most series held at once; points of new series beyond it are dropped, counted.",
        examples=[10000],
    )
    namespace_tag: str | None = Field(
        default="namespace",
        description=(
            "`emit: [metrics]`: the tag that carries each metric's EMF namespace (a `cloudwatch_metrics` output "
            "can publish into it with `namespace_from_tag`); null leaves the namespace out."
        ),
        examples=["namespace", None],
    )
    max_document_bytes: Size = Field(
        default=MAX_DOCUMENT_BYTES,
        description="Longer documents are dropped and counted (`emf_too_large`); CloudWatch Logs takes at most 1 MiB.",
        examples=["1MiB", "256KiB"],
    )
    max_connections: MaxConnections
    max_in_flight_bytes: MaxInFlightBytes
    idle_timeout: IdleTimeout

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        return check_interval(value)

    @field_validator("max_document_bytes")
    @classmethod
    def _check_size(cls, value: int) -> int:
        if not 64 <= value <= MAX_DOCUMENT_BYTES:
            raise ValueError(f"max_document_bytes must be between 64 bytes and {MAX_DOCUMENT_BYTES} (1MiB)")
        return value

    @model_validator(mode="after")
    def _check_emit(self) -> EmfConfig:
        if len(set(self.emit)) != len(self.emit):
            raise ValueError("emit lists a kind twice")
        return self


class EmfInput(ListeningInput):
    type_name: ClassVar[str] = "emf"
    description: ClassVar[str] = (
        "Embedded Metric Format documents over TCP and UDP (port 25888), validated, as log records and/or metrics."
    )
    Config: ClassVar[type[EmfConfig]] = EmfConfig
    emits: ClassVar[frozenset[str]] = frozenset((LOGS, METRICS))

    config: EmfConfig

    @classmethod
    def emitted_kinds(cls, config: EmfConfig) -> frozenset[str]:
        return frozenset(config.emit)

    def __init__(self, config: EmfConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.listeners = config.listeners(
            self.log,
            ctx.name,
            stream_handler=self._serve,
            datagram_handler=self._on_datagrams,
            max_datagram_bytes=config.max_document_bytes,
        )
        self.checker = EmfChecker()
        self.want_logs = "logs" in config.emit
        self.aggregator: Aggregator | None = None
        if "metrics" in config.emit:
            self.aggregator = Aggregator(
                config.interval, config.max_series, loss=ctx.loss, log=self.log, component=ctx.name
            )
        self.documents = 0
        """Documents received (every line that was not blank)."""
        self.emf_documents = 0
        """Valid EMF documents received (before splitting)."""
        self.plain_documents = 0
        """JSON objects without usable EMF metadata, passed on as plain log lines."""
        self.invalid = 0
        """Lines that are not JSON objects (dropped)."""
        self.too_large = 0
        self.failed = 0
        """Documents dropped because checking or serialising them raised (counted as `emf_document_error`)."""
        self.datagrams = 0
        self._limiter = RepeatLimiter(interval=60.0)
        self._run_ctx: InputContext | None = None

    def ports(self) -> list[int]:
        return self.listeners.ports()

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {
            "documents": self.documents,
            "emf_documents": self.emf_documents,
            "plain_documents": self.plain_documents,
            "invalid_documents": self.invalid,
            "too_large_documents": self.too_large,
            "split_documents": self.checker.split,
            "repaired_documents": self.checker.repaired,
            "invalid_timestamps": self.checker.invalid_timestamps,
            "failed_documents": self.failed,
            "datagrams": self.datagrams,
            **self.listeners.counters(),
        }
        if self.aggregator is not None:
            out["series"] = self.aggregator.series_count
            out["dropped_points"] = self.aggregator.dropped
        return out

    # ----------------------------------------------------------------- the loop

    async def run(self, ctx: InputContext) -> None:
        self._run_ctx = ctx
        agg = self.aggregator
        async with self.listeners.serving(STOP_TIMEOUT):
            self.log.info(
                "listening for EMF documents",
                extra=kv(component=ctx.name, addresses=",".join(self.config.listen), emit=",".join(self.config.emit)),
            )
            if agg is None:
                await ctx.stopping.wait()
            else:
                while not await ctx.sleep(agg.until_window_end(time.time())):
                    await self._emit_points(ctx, agg.flush(time.time()))
        if agg is not None:
            await self._emit_points(ctx, agg.flush_all())

    async def _emit_points(self, ctx: InputContext, points: list[Metric]) -> None:
        if points:
            await ctx.emit(metric_batch(points))

    # ----------------------------------------------------------------- receiving

    def _on_datagrams(self, datagrams: list[tuple[bytes, Any]]) -> None:
        limit = self.config.max_document_bytes
        lines: list[bytes] = []
        for data, _ in datagrams:
            if len(data) > limit:
                self._too_large(1)
                continue
            lines.extend(data.split(b"\n") if b"\n" in data.rstrip(b"\n") else (data,))
        self.datagrams += len(datagrams)
        records, nbytes = self.process(lines)
        if records and self._run_ctx is not None:
            self._run_ctx.try_emit(Batch(LOGS, records, nbytes))

    async def _serve(self, conn: Connection) -> None:
        splitter = LineSplitter(self.config.max_document_bytes)
        ctx = self._run_ctx
        assert ctx is not None
        while True:
            data = await conn.read(splitter.pending)
            lines, cuts = splitter.feed(data) if data else splitter.finish()
            if cuts:
                for i in sorted(cuts, reverse=True):
                    del lines[i]
                self._too_large(len(cuts))
            records, nbytes = self.process(lines)
            if not data:
                await emit_received(ctx, Batch(LOGS, records, nbytes), conn)
                return
            del data, lines  # nothing of this read stays alive while the next waits: the budget no longer counts it
            await emit_received(ctx, Batch(LOGS, records, nbytes), conn)
            del records

    def _too_large(self, count: int) -> None:
        self.too_large += count
        self.ctx.loss("emf_too_large", count)
        self._warn("too_large", "EMF documents longer than max_document_bytes were dropped", documents=count)

    # ----------------------------------------------------------------- documents (synchronous, per batch)

    def process(self, lines: list[bytes]) -> tuple[list[dict[str, Any]], int]:
        """Log records for a batch of document lines (metrics go to the aggregator); never raises."""
        now = time.time()
        now_ms = int(now * 1000)
        loads, dumps, check = orjson.loads, orjson.dumps, self.checker.check
        want_logs, agg, namespace_tag = self.want_logs, self.aggregator, self.config.namespace_tag
        records: list[dict[str, Any]] = []
        nbytes = 0
        invalid = failed = 0
        failure = ""
        losses: dict[str, int] = {}
        points: list[Metric] = []
        for line in lines:
            line = line.strip()
            if not line:
                continue
            self.documents += 1
            try:
                doc = loads(line)
            except orjson.JSONDecodeError:
                doc = None
            if type(doc) is not dict:
                invalid += 1
                continue
            try:
                result = check(doc, now_ms)
                if not result.emf:
                    doc_records: list[dict[str, Any]] = (
                        [{"timestamp": now, "message": line.decode()}] if want_logs else []
                    )
                    doc_points: list[Metric] = []
                else:
                    doc_records, doc_points = [], []
                    for piece in result.documents:
                        if agg is not None:
                            doc_points.extend(to_metrics(piece, namespace_tag))
                        if want_logs:
                            doc_records.append(
                                _record(piece, dumps(piece).decode() if result.changed else line.decode())
                            )
            except Exception as exc:
                # A document the checks did not foresee: it alone is dropped and counted (never the batch,
                # never the connection); the error is logged once per interval.
                failed += 1
                failure = f"{type(exc).__name__}: {exc}"
                continue
            for reason, count in result.losses.items():
                losses[reason] = losses.get(reason, 0) + count
            if result.emf:
                self.emf_documents += 1
            else:
                self.plain_documents += 1
            records.extend(doc_records)
            nbytes += sum(len(r["message"]) for r in doc_records)
            points.extend(doc_points)
        if agg is not None and points:
            agg.add(points)
        if failed:
            self.failed += failed
            self.ctx.loss("emf_document_error", failed)
            self._warn(
                "failed", "EMF documents that could not be processed were dropped", documents=failed, error=failure
            )
        if invalid:
            self.invalid += invalid
            self.ctx.loss("invalid_json", invalid)
            self._warn("invalid", "lines that are not JSON objects were dropped", documents=invalid)
        if losses:
            for reason, count in losses.items():
                self.ctx.loss(reason, count)
            self._warn(
                "emf_losses",
                "EMF metrics CloudWatch would ignore were left out of the documents",
                **{reason: count for reason, count in sorted(losses.items())},
            )
        return records, nbytes

    def _warn(self, cause: str, message: str, **fields: Any) -> None:
        now, _, suppressed = self._limiter.check(cause)
        if now:
            if suppressed:
                fields["repeats_suppressed"] = suppressed
            self.log.warning(message, extra=kv(component=self.ctx.name, **fields))


def _record(doc: dict[str, Any], text: str) -> dict[str, Any]:
    aws = doc["_aws"]
    record: dict[str, Any] = {"timestamp": aws["Timestamp"] / 1000.0, "message": text, "_emf": True}
    # The libraries name the destination in the metadata (the CloudWatch agent routes by it): keep it usable
    # in a cloudwatch_logs output's templates, e.g. log_group: "{log_group_name}".
    group = aws.get("LogGroupName")
    if type(group) is str and group:
        record["log_group_name"] = group
    stream = aws.get("LogStreamName")
    if type(stream) is str and stream:
        record["log_stream_name"] = stream
    return record
