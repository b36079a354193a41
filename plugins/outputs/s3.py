"""`s3`: records to Amazon S3 as partitioned, compressed objects, ready for Athena.

One request from the driver is one object per key prefix. The driver rolls
requests by size (`batch.max_bytes`, default 16MiB of records) and age
(`batch.timeout`, default 5 min), and the buffer (a disk buffer by default)
holds the records until the object that carries them is stored: acknowledging
a request only once its objects exist keeps delivery at-least-once without a
second store of our own, and nothing waits in memory that is not also on disk.

- Keys: `prefix` (a record template, Hive-style partitions from the event time
  by default) + the request's origin + the format's extension (`s3_keys`). A
  replay of the same buffered data after a crash writes the same keys, so it
  overwrites instead of duplicating.
- Bodies: JSON lines compressed with gzip (or zstd, or none), or Parquet
  (`s3_encoding`), encoded and compressed in worker threads.
- Upload: PutObject, or a multipart upload from `multipart_threshold` on
  (`s3_upload`), aborted on failure.
- Answers: throttling (`SlowDown`), 5xx, timeouts and connection errors make
  the whole request retry (objects already stored for it are not sent again);
  permanent errors (access denied, no such bucket, key too long) dead-letter
  the records of the objects they hit.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import KINDS, METRICS, Batch
from collector.output_settings import BatchSettings, BufferSettings
from collector.send_result import Outcome, SendResult
from collector.units import Size
from collector_plugins.common.aws.errors import classify_aws_error
from collector_plugins.common.aws.metadata import template_host_facts
from collector_plugins.common.aws.session import AwsClients
from collector_plugins.common.aws.settings import AwsSettings
from collector_plugins.outputs.aws_records import raise_unless_delivered
from collector_plugins.outputs.s3_encoding import (
    LEVELS,
    PARQUET_TYPES,
    Encoding,
    ObjectEncoder,
    check_column_type,
    column_name,
    parquet_available,
    zstd_available,
)
from collector_plugins.outputs.s3_keys import KeyTooLongError, ObjectKeys, check_prefix
from collector_plugins.outputs.s3_limits import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_BATCH_TIMEOUT,
    MAX_BATCH_BYTES,
    MAX_PART_BYTES,
    MIB,
    MIN_PART_BYTES,
)
from collector_plugins.outputs.s3_upload import Uploader, UploadOptions

ACTION = "s3:PutObject"
DEFAULT_PREFIX = "logs/year={%Y}/month={%m}/day={%d}/hour={%H}/host={host}/"
DEFAULT_COLUMNS = {"timestamp": "double", "message": "string", "host": "string", "file": "string"}
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REMEMBERED_REQUESTS = 256  # requests whose stored objects are remembered while they are retried


class AthenaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str | None = Field(
        None,
        pattern=r"^[a-z_][a-z0-9_]{0,254}$",
        description="Table name `collector athena-ddl` uses (default: the output's name).",
        examples=["app_logs"],
    )
    database: str = Field(
        "default", pattern=r"^[a-z_][a-z0-9_]{0,254}$", description="Glue database of the table.", examples=["logs"]
    )
    first_year: int = Field(
        2020, ge=1970, le=2099, description="First year the `year` partition projection covers.", examples=[2024]
    )
    partition_values: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Known values of non-time partition columns (projected as `enum`); others are `injected` "
        "(queries must then name the value: `WHERE host = 'ip-10-0-0-1'`).",
        examples=[{"host": ["web-1", "web-2"]}],
    )


class S3Config(AwsSettings, OutputConfig):
    type: Literal["s3"] = Field(description="Writes records to Amazon S3 objects.", examples=["s3"])
    bucket: str = Field(
        description="The bucket (in the output's region).", examples=["my-company-logs"], min_length=3, max_length=63
    )
    prefix: str = Field(
        DEFAULT_PREFIX,
        description="Key prefix, a record template: `{%Y}` `{%m}` `{%d}` `{%H}` `{%M}` of the event time (UTC), "
        "host facts (`{host}`), record fields (`{stream}`). Records with different prefixes go to different objects.",
        examples=[DEFAULT_PREFIX, "k8s/{kubernetes.namespace}/dt={%Y}-{%m}-{%d}/"],
    )
    format: Literal["json", "parquet"] = Field(
        "json",
        description="`json`: one JSON document per line (every field of the record); `parquet`: the `columns`, "
        "typed (needs the `parquet` extra: pyarrow).",
        examples=["json", "parquet"],
    )
    compression: Literal["gzip", "zstd", "snappy", "none"] = Field(
        "gzip",
        description="`gzip` (`.json.gz`), `zstd` (`.json.zst`) or `none` for JSON lines; for Parquet the codec "
        "inside the file (`snappy` too).",
        examples=["gzip", "zstd"],
    )
    compression_level: int | None = Field(
        None,
        description="gzip 1-9 (default 1: fastest, ~10% larger than 6), zstd 1-19 (default 3).",
        examples=[1, 6],
    )
    columns: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_COLUMNS),
        description="Record fields as table columns, with their Athena types: the columns of "
        "`collector athena-ddl`, and exactly what `parquet` writes.",
        examples=[{**DEFAULT_COLUMNS, "stream": "string", "status": "bigint"}],
    )
    multipart_threshold: Size = Field(
        16 * MIB,
        description="Objects of this size or more (compressed) go up as multipart uploads.",
        examples=["16MiB"],
    )
    part_size: Size = Field(
        8 * MIB, description="Size of each multipart part (5MiB to 5GiB; the last is smaller).", examples=["8MiB"]
    )
    part_concurrency: int = Field(4, ge=1, le=32, description="Parts uploaded at once.", examples=[4])
    storage_class: Literal["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"] | None = Field(
        None, description="Storage class of new objects (default: the bucket's, STANDARD).", examples=["STANDARD_IA"]
    )
    server_side_encryption: Literal["AES256", "aws:kms", "aws:kms:dsse"] | None = Field(
        None, description="Encryption at rest, if not the bucket's default.", examples=["aws:kms"]
    )
    kms_key_id: str | None = Field(
        None,
        description="KMS key (ID, alias or ARN) for `aws:kms` encryption (default: the AWS managed key).",
        examples=["alias/logs"],
    )
    athena: AthenaSettings = Field(
        AthenaSettings(),
        description="How `collector athena-ddl` names the table and projects its partitions.",
        examples=[{"table": "app_logs", "database": "logs", "first_year": 2024}],
    )
    buffer: BufferSettings = Field(
        BufferSettings(type="disk"),
        description="Where records wait until their object is stored: on disk by default (an object holds "
        "minutes of data).",
        examples=[{"type": "disk", "max_bytes": "2GiB"}],
    )

    @model_validator(mode="before")
    @classmethod
    def _batch_fits_a_memory_buffer(cls, data: Any) -> Any:
        """With a memory buffer, default requests to half of it: a fuller one would wait for `timeout`."""
        if not isinstance(data, dict) or data.get("buffer") is None:
            return data
        buffer = data["buffer"]
        try:
            settings = buffer if isinstance(buffer, BufferSettings) else BufferSettings.model_validate(buffer)
        except ValidationError:
            return data  # the field reports it
        if settings.type != "memory":
            return data
        batch = data.get("batch") or {}
        batch = batch.model_dump(exclude_unset=True) if isinstance(batch, BatchSettings) else dict(batch)
        batch.setdefault("max_events", settings.events_limit // 2)
        batch.setdefault("max_bytes", min(DEFAULT_BATCH_BYTES, settings.bytes_limit // 2))
        return {**data, "batch": batch}

    @field_validator("bucket")
    @classmethod
    def _check_bucket(cls, value: str) -> str:
        if not _BUCKET_RE.match(value) or ".." in value:
            raise ValueError(f"{value!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-')")
        return value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        return check_prefix(value)

    @field_validator("columns")
    @classmethod
    def _check_columns(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("columns must name at least one record field")
        checked = {field: check_column_type(kind) for field, kind in value.items()}
        names = [column_name(f) for f in checked]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"fields map to the same column name: {', '.join(clashes)}")
        return checked

    @model_validator(mode="after")
    def _check_combination(self) -> S3Config:
        if self.compression == "snappy" and self.format != "parquet":
            raise ValueError("compression: snappy is for format: parquet; JSON lines take gzip, zstd or none")
        if self.compression_level is not None:
            if self.compression not in LEVELS:
                raise ValueError(f"compression_level applies to gzip and zstd, not {self.compression}")
            low, high = LEVELS[self.compression]
            if not low <= self.compression_level <= high:
                raise ValueError(f"compression_level for {self.compression} is {low} to {high}")
        if self.compression == "zstd" and self.format == "json" and not zstd_available():
            raise ValueError("compression: zstd needs the zstandard package: pip install 'node-collector[zstd]'")
        if self.format == "parquet":
            if not parquet_available():
                raise ValueError("format: parquet needs pyarrow: pip install 'node-collector[parquet]'")
            unsupported = sorted(f"{f}: {t}" for f, t in self.columns.items() if t not in PARQUET_TYPES)
            if unsupported:
                raise ValueError(
                    f"parquet cannot write column type(s) {', '.join(unsupported)}; "
                    f"use one of {', '.join(sorted(PARQUET_TYPES))}"
                )
        if not MIN_PART_BYTES.value <= self.part_size <= MAX_PART_BYTES.value:
            raise ValueError(f"part_size must be 5MiB to 5GiB (see {MIN_PART_BYTES.source})")
        if self.multipart_threshold < MIN_PART_BYTES.value:
            raise ValueError(
                f"multipart_threshold must be at least 5MiB, S3's smallest part (see {MIN_PART_BYTES.source})"
            )
        if self.kms_key_id is not None and self.server_side_encryption not in ("aws:kms", "aws:kms:dsse"):
            raise ValueError("kms_key_id needs server_side_encryption: aws:kms (or aws:kms:dsse)")
        batch, buffer = self.batch, self.buffer
        if batch.max_bytes is not None and batch.max_bytes > MAX_BATCH_BYTES:
            raise ValueError(f"batch.max_bytes is at most {MAX_BATCH_BYTES // MIB}MiB: an object is built in memory")
        too_big_for_memory = (batch.max_bytes or DEFAULT_BATCH_BYTES) > buffer.bytes_limit // 2 or (
            batch.max_events is None or batch.max_events > buffer.events_limit // 2
        )
        if buffer.type == "memory" and too_big_for_memory:
            raise ValueError(
                "with a memory buffer, batch.max_bytes and batch.max_events must be at most half of "
                "buffer.max_bytes and buffer.max_events (a fuller request waits for batch.timeout); "
                "raise the buffer or use a disk buffer"
            )
        return self


@dataclass
class _Object:
    key: str
    records: list[Any]
    body: bytes = b""
    raw_bytes: int = 0
    error: str | None = None  # why it cannot be stored (permanent)


class S3Output(Output):
    type_name: ClassVar[str] = "s3"
    description: ClassVar[str] = (
        "Writes records to Amazon S3 as time-partitioned objects (JSON lines gzip/zstd, or Parquet), for Athena."
    )
    Config: ClassVar[type[S3Config]] = S3Config
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    # An object is one request: S3 limits neither records nor (for our sizes) bytes, so these are our defaults.
    default_max_events: ClassVar[int | None] = 1 << 40
    default_max_bytes: ClassVar[int | None] = DEFAULT_BATCH_BYTES
    default_batch_timeout: ClassVar[float] = DEFAULT_BATCH_TIMEOUT

    config: S3Config

    def __init__(self, config: S3Config, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.encoding = Encoding(config.format, config.compression, config.compression_level)
        self._keys = ObjectKeys(config.prefix, ctx.host.as_dict(), self.encoding.extension)
        self._encoder = ObjectEncoder(self.encoding, config.columns)  # its thread starts on first use
        self._clients: AwsClients | None = None
        extra: dict[str, Any] = {}
        if config.storage_class:
            extra["StorageClass"] = config.storage_class
        if config.server_side_encryption:
            extra["ServerSideEncryption"] = config.server_side_encryption
        if config.kms_key_id:
            extra["SSEKMSKeyId"] = config.kms_key_id
        options = UploadOptions(
            config.bucket, config.multipart_threshold, config.part_size, config.part_concurrency, extra
        )
        self._uploader = Uploader(self._s3, options, ctx.logger, ctx.name)
        # Keys stored per request origin while that request is being retried: not uploaded twice.
        self._stored: OrderedDict[str, set[str]] = OrderedDict()
        self.bytes_encoded = 0
        """Object bytes before compression."""

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        host = await template_host_facts(
            self._aws().session, [self.config.prefix], self.ctx.host.as_dict(), self.log, self.ctx.name
        )
        if host is not None:
            self._keys = ObjectKeys(self.config.prefix, host, self.encoding.extension)
        await self._s3()

    async def stop(self) -> None:
        if self._clients is not None:
            await self._clients.close()
            self._clients = None
        await asyncio.to_thread(self._encoder.close)

    def _aws(self) -> AwsClients:
        if self._clients is None:
            self._clients = AwsClients(self.config, self.ctx)
        return self._clients

    async def _s3(self) -> Any:
        return await self._aws().client("s3")

    def counters(self) -> dict[str, float]:
        stats = self._uploader.stats
        return {
            "objects": stats.objects,
            "multipart_uploads": stats.multipart_uploads,
            "parts": stats.parts,
            "aborted_uploads": stats.aborted_uploads,
            "bytes_stored": stats.bytes,
            "bytes_encoded": self.bytes_encoded,
        }

    # -- sending -----------------------------------------------------------------------------------

    async def write(self, batch: Batch) -> None:
        """Deliver the whole batch once or raise (for callers outside the driver, which uses `send`)."""
        raise_unless_delivered(await self.send(batch))

    async def send(self, batch: Batch) -> SendResult:
        if not batch.records:
            return SendResult.ok()
        origin = batch.origin
        stored = self._stored.get(origin, set()) if origin else set()
        objects = await asyncio.to_thread(self.prepare_objects, batch, origin, stored)
        failed: list[_Object] = []
        for obj in objects:
            if obj.error is None:
                result = await self._store(obj)
                if result is None:
                    stored.add(obj.key)
                    continue
                if result.outcome is Outcome.RETRY:
                    if origin:
                        self._remember(origin, stored)
                    return result
                obj.error = result.reason
            failed.append(obj)
        if origin:
            self._stored.pop(origin, None)
        return self._outcome(batch.records, failed)

    def prepare_objects(self, batch: Batch, origin: str | None, stored: set[str]) -> list[_Object]:
        """Partition, name and encode (blocking: a worker thread; `bench.s3` measures it). Stored keys are skipped."""
        records = batch.records
        if batch.kind == METRICS:
            records = [m.to_dict() for m in records]
        encoder = self._encoder
        objects = []
        for prefix, group in self._keys.partition(records).items():
            try:
                key = self._keys.key(prefix, origin)
            except KeyTooLongError as exc:
                objects.append(_Object(prefix, group, error=f"key_too_long: {exc}"))
                continue
            if key in stored:
                continue
            body, raw = encoder.encode(group)
            objects.append(_Object(key, group, body, raw))
        if batch.kind == METRICS:  # outcomes must name the records the driver holds, not their dicts
            originals = {id(d): m for d, m in zip(records, batch.records, strict=True)}
            for obj in objects:
                obj.records = [originals[id(d)] for d in obj.records]
        return objects

    async def _store(self, obj: _Object) -> SendResult | None:
        """None once stored; else the classified failure."""
        metadata = {"records": str(len(obj.records))}
        try:
            await self._uploader.put(obj.key, obj.body, self.encoding.content_type, metadata)
        except (BotoCoreError, ClientError, OSError) as exc:  # OSError covers timeouts
            return classify_aws_error(
                exc, action=ACTION, log=self.log, resource=f"arn:aws:s3:::{self.config.bucket}/{obj.key}"
            )
        self.bytes_encoded += obj.raw_bytes
        return None

    def _remember(self, origin: str, stored: set[str]) -> None:
        self._stored[origin] = stored
        self._stored.move_to_end(origin)
        while len(self._stored) > _REMEMBERED_REQUESTS:
            self._stored.popitem(last=False)

    @staticmethod
    def _outcome(records: list[Any], failed: list[_Object]) -> SendResult:
        if not failed:
            return SendResult.ok()
        reason_of = {id(r): obj.error or "rejected" for obj in failed for r in obj.records}
        if len(reason_of) == len(records):
            return SendResult.drop(failed[0].error or "rejected")
        outcomes = [Outcome.DROP if id(r) in reason_of else Outcome.OK for r in records]
        return SendResult.partial(outcomes, [reason_of.get(id(r), "") for r in records])
