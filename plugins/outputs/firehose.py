"""`firehose`: records to an Amazon Data Firehose stream with PutRecordBatch.

The driver cuts requests within `firehose_limits.LIMITS` (500 records, 4 MB,
1,000 KiB per record), sizing each event as its encoded blob (`record_size`).
`send` encodes the request's events once (`aws_records.blob_encoder`) and makes
one PutRecordBatch call:

- without `pack`, one Firehose record per event;
- with `pack`, consecutive events are joined into Firehose records of at most
  1,000 KiB (`pack_spans`), so that small events do not each cost a record
  (Firehose meters ingestion per record, rounded up to 5 KB). The request's
  bytes are the same either way, and never more records than events, so the
  driver's limits hold for the packed request too.

Answers: a failed call is classified by the AWS layer (throttling, 5xx and
connection errors retried by the driver; validation and access errors
dead-lettered). A call that succeeds with `FailedPutCount > 0` becomes
`SendResult.partial`: one outcome per event, taken from its Firehose record's
`ErrorCode` (every event of a failed packed record shares it), so the driver
resends only the failed events and never an accepted one.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import KINDS, Batch
from collector.log import RepeatLimiter
from collector.send_result import Outcome, SendResult
from collector_plugins.common.aws.errors import classify_aws_error, error_code
from collector_plugins.common.aws.session import AwsClients
from collector_plugins.common.aws.settings import AwsSettings
from collector_plugins.outputs import firehose_limits
from collector_plugins.outputs.aws_records import (
    Format,
    blob_encoder,
    entry_outcomes,
    mismatched_answer,
    pack_spans,
    raise_unless_delivered,
    spread,
    throttled_entries,
)

ACTION = "firehose:PutRecordBatch"


class FirehoseConfig(AwsSettings, OutputConfig):
    type: Literal["firehose"] = Field(
        description="Sends records to an Amazon Data Firehose stream.", examples=["firehose"]
    )
    delivery_stream: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-zA-Z0-9_.-]+$",
        description="Name of the Firehose stream (Direct PUT source) in the output's region.",
        examples=["node-logs"],
    )
    format: Format = Field(
        "json",
        description="`json`: each record as one JSON document; `raw`: the `message` field only "
        "(records without one as JSON).",
        examples=["json", "raw"],
    )
    append_newline: bool = Field(
        True,
        description="End every event with a newline, so that objects written to S3 hold one event per line "
        "(Firehose adds no delimiter). Turn off only when the stream appends its own delimiter.",
        examples=[True],
    )
    pack: bool = Field(
        False,
        description="Join consecutive events into Firehose records of up to 1,000 KiB instead of one record "
        "per event (fewer, fuller records; needs newline-delimited events downstream).",
        examples=[True],
    )


class FirehoseOutput(Output):
    type_name: ClassVar[str] = "firehose"
    description: ClassVar[str] = "Sends records to Amazon Data Firehose (PutRecordBatch), as JSON lines or raw text."
    Config: ClassVar[type[FirehoseConfig]] = FirehoseConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    limits = firehose_limits.LIMITS
    default_batch_timeout: ClassVar[float] = 1.0

    config: FirehoseConfig

    def __init__(self, config: FirehoseConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._encode = blob_encoder(config.format, config.append_newline)
        self.clients = AwsClients(config, ctx)
        """The component's AWS clients: created at start, closed at stop."""
        self._limiter = RepeatLimiter(60.0)
        self.requests = 0
        """PutRecordBatch calls made."""
        self.records_sent = 0
        """Firehose records accepted (with `pack`, fewer than the events they carry)."""
        self.records_failed = 0
        """Firehose records the service answered with an error code (retried or dead-lettered)."""

    async def start(self) -> None:
        await self.clients.client("firehose")

    async def stop(self) -> None:
        await self.clients.close()

    def record_size(self, record: Any) -> int:
        # What the record's blob counts against the per-record and per-request limits (Data before base64).
        return len(self._encode([record])[0])

    def counters(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "records_sent": self.records_sent,
            "records_failed": self.records_failed,
        }

    async def write(self, batch: Batch) -> None:
        """Deliver the whole batch once or raise (for callers outside the driver, which uses `send`)."""
        result = await self.send(batch)
        raise_unless_delivered(result)

    async def send(self, batch: Batch) -> SendResult:
        if not batch.records:
            return SendResult.ok()
        blobs = self._encode(batch.records)
        spans: list[tuple[int, int]] | None = None
        if self.config.pack:
            spans = pack_spans([len(b) for b in blobs], firehose_limits.MAX_RECORD_BYTES.value)
            entries = [{"Data": b"".join(blobs[start:end])} for start, end in spans]
        else:
            entries = [{"Data": blob} for blob in blobs]
        client = await self.clients.client("firehose")
        self.requests += 1
        try:
            response = await client.put_record_batch(DeliveryStreamName=self.config.delivery_stream, Records=entries)
        except (BotoCoreError, ClientError, OSError) as exc:  # OSError covers TimeoutError
            result = classify_aws_error(
                exc, action=ACTION, log=self.log, resource=f"deliverystream/{self.config.delivery_stream}"
            )
            if error_code(exc) == "ServiceUnavailableException":
                # Firehose's answer when the stream's throughput limit is exceeded (PutRecordBatch API
                # reference, checked 2026-12-06): throttling, so the driver also slows down.
                return SendResult.throttle(result.reason, result.retry_after)
            return result
        if not response.get("FailedPutCount"):
            self.records_sent += len(entries)
            return SendResult.ok()
        answers = response.get("RequestResponses") or []
        if len(answers) != len(entries):
            return SendResult.retry(
                mismatched_answer("PutRecordBatch", len(entries), len(answers), self.log, self._limiter, self.ctx.name)
            )
        outcomes, reasons = entry_outcomes(answers)
        throttled = throttled_entries(answers)
        failed = sum(1 for o in outcomes if o is not Outcome.OK)
        self.records_failed += failed
        self.records_sent += len(entries) - failed
        if spans is not None:
            outcomes, reasons = spread(spans, outcomes, reasons)
        return SendResult.partial(outcomes, reasons, throttled=throttled)
