"""`kinesis`: records to an Amazon Kinesis data stream with PutRecords.

The driver cuts requests within `kinesis_limits.LIMITS` (500 records, 10 MiB
including partition keys, 10 MiB per record), sizing each event as its blob
plus its partition key in UTF-8 (`record_size`), the way Kinesis counts.
`send` encodes the events once, gives each its partition key and makes one
PutRecords call. Events larger than the stream's own maximum record size
(`max_record_size`, 1 MiB unless the stream was raised) are never sent: they
are dead-lettered as `record_too_large` and the rest of the request goes.

Partition keys come from a record template (`{host}`, `{file}`, `{k8s.pod}`)
or, without one, are random per event (spreading load over every shard). A key
is 1 to 256 characters: a longer one is cut to 256.

Ordering. PutRecords processes every record of a request even when an earlier
one fails, so after a partial failure Kinesis holds later events of a key ahead
of the failed one. With `preserve_order` (the default), when an event of key K
fails with a retryable error, every later event of K in the same request is
resent with it, although Kinesis accepted it: the stream then ends with all of
K's events in order, at the price of duplicates of the held-back events
(at-least-once, as always). Without it, only the failed events are resent and
keys may be reordered. Requests are sent one at a time (`concurrency: 1`), so
a later request never overtakes a retried one.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, field_validator, model_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import KINDS, Batch, Metric
from collector.log import RepeatLimiter
from collector.send_result import Outcome, SendResult
from collector.units import Size
from collector_plugins.common.aws.errors import classify_aws_error
from collector_plugins.common.aws.session import AwsClients
from collector_plugins.common.aws.settings import AwsSettings
from collector_plugins.common.record_templates import RecordTemplate, check_record_template
from collector_plugins.outputs import kinesis_limits
from collector_plugins.outputs.aws_records import (
    Format,
    blob_encoder,
    entry_outcomes,
    mismatched_answer,
    raise_unless_delivered,
    throttled_entries,
)

ACTION = "kinesis:PutRecords"
_STREAM_NAME_RE = r"^[a-zA-Z0-9_.-]{1,128}$"
_STREAM_ARN_RE = r"^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream/[a-zA-Z0-9_.-]{1,128}$"
_STREAM_RE = f"({_STREAM_NAME_RE})|({_STREAM_ARN_RE})"
RANDOM_KEY_CHARS = 32  # 128 random bits in hex
HELD_BACK = "held back: an earlier record with the same partition key failed"


class KinesisConfig(AwsSettings, OutputConfig):
    type: Literal["kinesis"] = Field(
        description="Sends records to an Amazon Kinesis data stream.", examples=["kinesis"]
    )
    stream: str = Field(
        pattern=_STREAM_RE,
        description="The data stream: its name (in the output's region) or its ARN.",
        examples=["node-events", "arn:aws:kinesis:eu-west-1:123456789012:stream/node-events"],
    )
    partition_key: str | None = Field(
        None,
        min_length=1,
        description="Template of each record's partition key: host facts (`{host}`), record fields "
        "(`{file}`, `{k8s.pod}`), date parts (`{%H}`). Unset: a random key per record.",
        examples=["{host}", "{host}/{file}", None],
    )
    format: Format = Field(
        "json",
        description="`json`: each record as one JSON document; `raw`: the `message` field only "
        "(records without one as JSON).",
        examples=["json", "raw"],
    )
    append_newline: bool = Field(
        False,
        description="End every record's data with a newline (useful when a Firehose stream reads this "
        "stream into S3 objects).",
        examples=[False],
    )
    max_record_size: Size = Field(
        kinesis_limits.STREAM_DEFAULT_RECORD_BYTES.value,
        description="The stream's maximum record size (data plus partition key): 1MiB unless the stream was "
        "raised (`MaxRecordSizeInKiB`), at most 10MiB. Larger records are dead-lettered.",
        examples=["1MiB", "10MiB"],
    )
    preserve_order: bool = Field(
        True,
        description="Keep each partition key's records in order across partial failures by resending the "
        "later records of a key whose record failed (duplicates them). False resends only failed records.",
        examples=[True, False],
    )

    @field_validator("partition_key")
    @classmethod
    def _check_partition_key(cls, value: str | None) -> str | None:
        return None if value is None else check_record_template(value)

    @field_validator("max_record_size")
    @classmethod
    def _check_max_record_size(cls, value: int) -> int:
        top = kinesis_limits.MAX_RECORD_BYTES
        if not 1 <= value <= top.value:
            raise ValueError(
                f"max_record_size must be between 1 byte and {top.value} bytes (10MiB), the largest record "
                f"Kinesis accepts: see {top.source} (checked {top.checked})"
            )
        return value

    @model_validator(mode="after")
    def _order_needs_one_request_at_a_time(self) -> KinesisConfig:
        if self.preserve_order and self.partition_key is not None and self.concurrency > 1:
            raise ValueError(
                "preserve_order keeps a partition key's records in order only with concurrency: 1 "
                "(concurrent requests overtake each other); set preserve_order: false to send concurrently"
            )
        return self


def fit_partition_key(key: str) -> str:
    """At most 256 characters, counted as UTF-16 code units as well (what a Java service counts)."""
    limit = kinesis_limits.MAX_PARTITION_KEY_CHARS.value
    if len(key) <= limit // 2:
        return key
    if len(key.encode("utf-16-le")) // 2 <= limit:
        return key
    cut = key[:limit]
    while len(cut.encode("utf-16-le")) // 2 > limit:
        cut = cut[:-1]
    return cut


class PartitionKeys:
    """The partition key of each record: a template over the record, or 128 random bits."""

    def __init__(self, template: str | None, host: dict[str, str]) -> None:
        self.template = None if template is None else RecordTemplate(template, host)
        self.truncated = 0
        """Keys cut to 256 characters."""
        self._random = random.Random()

    def key(self, record: Any) -> str:
        """One record's key, for sizing it (not counted in `truncated`, which counts keys sent)."""
        if self.template is None:
            return f"{self._random.getrandbits(128):032x}"
        return fit_partition_key(self.template.render(record if isinstance(record, dict) else _fields(record)))

    def keys(self, records: Sequence[Any]) -> list[str]:
        template = self.template
        if template is None:
            bits = self._random.getrandbits
            return [f"{bits(128):032x}" for _ in records]
        if template.static:
            return [fit_partition_key(template.render({}))] * len(records)
        render = template.render
        keys = [render(r if isinstance(r, dict) else _fields(r)) for r in records]
        # Rare long keys are cut; the common case pays one length check per record.
        limit = kinesis_limits.MAX_PARTITION_KEY_CHARS.value // 2
        for i, key in enumerate(keys):
            if len(key) > limit:
                fitted = fit_partition_key(key)
                if fitted is not key:
                    keys[i] = fitted
                    self.truncated += 1
        return keys


def _fields(record: Any) -> dict[str, Any]:
    return record.to_dict() if isinstance(record, Metric) else {}


def hold_back_after_failures(keys: Sequence[str], outcomes: list[Outcome], reasons: list[str]) -> int:
    """Mark RETRY every accepted record that follows a retried record of the same key; returns how many."""
    failed: set[str] = set()
    held = 0
    for i, outcome in enumerate(outcomes):
        if outcome is Outcome.RETRY:
            failed.add(keys[i])
        elif outcome is Outcome.OK and failed and keys[i] in failed:
            outcomes[i] = Outcome.RETRY
            reasons[i] = HELD_BACK
            held += 1
    return held


class KinesisOutput(Output):
    type_name: ClassVar[str] = "kinesis"
    description: ClassVar[str] = "Sends records to an Amazon Kinesis data stream (PutRecords), keyed by a template."
    Config: ClassVar[type[KinesisConfig]] = KinesisConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    limits = kinesis_limits.LIMITS
    default_batch_timeout: ClassVar[float] = 1.0

    config: KinesisConfig

    def __init__(self, config: KinesisConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._encode = blob_encoder(config.format, config.append_newline)
        try:
            self._keys = PartitionKeys(config.partition_key, ctx.host.as_dict())
        except ValueError as exc:
            raise ValueError(f"kinesis output {ctx.name!r}: partition_key: {exc}") from None
        self.clients = AwsClients(config, ctx)
        """The component's AWS clients: created at start, closed at stop."""
        self._limiter = RepeatLimiter(60.0)
        if config.stream.startswith("arn:"):
            self._target = {"StreamARN": config.stream}
            self._resource = config.stream
        else:
            self._target = {"StreamName": config.stream}
            self._resource = f"stream/{config.stream}"
        self.requests = 0
        """PutRecords calls made."""
        self.records_failed = 0
        """Records the service answered with an error code (retried or dead-lettered)."""
        self.records_held_back = 0
        """Accepted records resent after an earlier record of their key failed (`preserve_order`)."""
        self.records_too_large = 0
        """Records over `max_record_size`, dead-lettered without being sent."""

    async def start(self) -> None:
        await self.clients.client("kinesis")

    async def stop(self) -> None:
        await self.clients.close()

    def record_size(self, record: Any) -> int:
        blob = self._encode([record])[0]
        if self._keys.template is None:
            return len(blob) + RANDOM_KEY_CHARS
        return len(blob) + len(self._keys.key(record).encode("utf-8"))

    def counters(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "records_failed": self.records_failed,
            "records_held_back": self.records_held_back,
            "records_too_large": self.records_too_large,
            "partition_keys_truncated": self._keys.truncated,
        }

    async def write(self, batch: Batch) -> None:
        """Deliver the whole batch once or raise (for callers outside the driver, which uses `send`)."""
        raise_unless_delivered(await self.send(batch))

    async def send(self, batch: Batch) -> SendResult:
        records = batch.records
        if not records:
            return SendResult.ok()
        blobs = self._encode(records)
        keys = self._keys.keys(records)
        n = len(records)
        outcomes = [Outcome.OK] * n
        reasons = [""] * n
        positions = self._sendable(blobs, keys, outcomes, reasons)
        if not positions:
            return SendResult.partial(outcomes, reasons)
        entries = [{"Data": blobs[i], "PartitionKey": keys[i]} for i in positions]
        client = await self.clients.client("kinesis")
        self.requests += 1
        try:
            response = await client.put_records(Records=entries, **self._target)
        except (BotoCoreError, ClientError, OSError) as exc:  # OSError covers TimeoutError
            result = classify_aws_error(exc, action=ACTION, log=self.log, resource=self._resource)
            if len(positions) == n:
                return result
            for i in positions:
                outcomes[i], reasons[i] = result.outcome, result.reason
            return SendResult.partial(outcomes, reasons, result.retry_after, result.throttled)
        throttled = False
        if response.get("FailedRecordCount"):
            answers = response.get("Records") or []
            if len(answers) == len(entries):
                answered, why = entry_outcomes(answers)
                throttled = throttled_entries(answers)
            else:
                reason = mismatched_answer(
                    "PutRecords", len(entries), len(answers), self.log, self._limiter, self.ctx.name
                )
                answered, why = [Outcome.RETRY] * len(entries), [reason] * len(entries)
            for j, i in enumerate(positions):
                outcomes[i], reasons[i] = answered[j], why[j]
            self.records_failed += sum(1 for o in answered if o is not Outcome.OK)
            if self.config.preserve_order:
                self.records_held_back += hold_back_after_failures(keys, outcomes, reasons)
        elif len(positions) == n:
            return SendResult.ok()
        return SendResult.partial(outcomes, reasons, throttled=throttled)

    def _sendable(self, blobs: list[bytes], keys: list[str], outcomes: list[Outcome], reasons: list[str]) -> list[int]:
        """Positions of the records within the stream's record size; the others are marked DROP."""
        limit = self.config.max_record_size
        key_bytes: dict[str, int] = {}
        positions: list[int] = []
        for i, (blob, key) in enumerate(zip(blobs, keys, strict=True)):
            size = key_bytes.get(key)
            if size is None:
                size = key_bytes[key] = len(key.encode("utf-8"))
            size += len(blob)
            if size > limit:
                outcomes[i] = Outcome.DROP
                reasons[i] = f"record_too_large: {size} bytes with its partition key, the stream takes {limit}"
                self.records_too_large += 1
            else:
                positions.append(i)
        return positions
