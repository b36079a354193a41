"""`kafka`: records to Kafka topics, each reported delivered only once the broker acknowledged it.

One aiokafka producer per instance, created on the first send (a broker that is away at start-up is a
retry, not a failed start), idempotent with `acks=all` by default, so the broker's retries of one
producer session never write a record twice and a record counts as delivered only once every in-sync
replica has it. `send` hands every record of the driver's request to the producer, which packs them into
per-partition batches (`max_batch_size`, `linger`, `compression`), then waits for each record's
acknowledgement and answers the driver per record (`SendResult.partial`): acknowledged records are done,
the others are retried or dead-lettered as `errors.py` classifies aiokafka's error. Records the driver
resends after an error that left their fate unknown (a timeout) may reach the topic twice: delivery is
at least once.

Per record: the topic and the key are record templates (`{host}`, `{service}`, `{k8s.namespace}`, `{%Y}`);
records with the same key go to the same partition (aiokafka's default partitioner, murmur2 like the Java
client), records without a key are spread over the partitions. `headers` copies record fields into Kafka
headers. A topic name Kafka would refuse (characters outside `[a-zA-Z0-9._-]`, longer than 249) is
dead-lettered without a round trip.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import KINDS, Batch
from collector.send_result import Outcome, RetryableError, SendResult
from collector.units import Duration, Size
from collector_plugins.common.aws.records import Format, blob_encoder, raise_unless_delivered
from collector_plugins.common.record_templates import RecordTemplate, check_record_template
from collector_plugins.outputs.kafka import limits as kafka_limits
from collector_plugins.outputs.kafka.security import KafkaSasl, KafkaTls, producer_settings

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]

_MAX_TIMESTAMP = 253402300800  # 10000-01-01: beyond it a record's time is not a usable Kafka timestamp
_TOPIC_RE = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def valid_topic(name: str) -> bool:
    """Kafka's rule for topic names (`Topic.validate` in the Java client): legal characters, at most 249."""
    return bool(_TOPIC_RE.match(name)) and name not in {".", ".."}


class KafkaConfig(OutputConfig):
    type: Literal["kafka"] = Field(description="Sends records to Kafka topics.", examples=["kafka"])
    bootstrap_servers: list[str] = Field(
        min_length=1,
        description="`host:port` of one or more brokers to learn the cluster from.",
        examples=[["b-1.kafka.internal:9092", "b-2.kafka.internal:9092"]],
    )
    topic: str = Field(
        description="Topic of each record: a record template (`{host}`, `{field}`, `{a.b}`, `{%Y}`...).",
        examples=["logs", "logs-{k8s.namespace}"],
    )
    key: str | None = Field(
        None,
        description="Message key of each record, a record template; records with the same key go to the same "
        "partition, in order. Without it records are spread over the partitions.",
        examples=["{host}", "{k8s.pod}"],
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Kafka headers from record fields: header name to field (`a.b` for nested); a record "
        "without the field has no such header. Strings as UTF-8, other values as JSON.",
        examples=[{"service": "service", "trace": "trace_id"}],
    )
    format: Format = Field(
        "json",
        description="`json`: each record as one JSON document; `raw`: the `message` field only (records "
        "without one as JSON).",
        examples=["json"],
    )
    compression: Compression = Field(
        "lz4",
        description="Compression of the record batches: `none`, `gzip`, `snappy`, `lz4` or `zstd`.",
        examples=["zstd"],
    )
    idempotent: bool = Field(
        True,
        description="Idempotent producer (`enable.idempotence`): the producer's own retries never duplicate a "
        "record. Brokers older than 0.11 need it off.",
        examples=[True],
    )
    acks: Literal["all", 1] = Field(
        "all",
        description="Acknowledgement the producer waits for: `all` in-sync replicas (required by `idempotent`), "
        "or `1` (the leader only: a leader lost before replication loses the record).",
        examples=["all"],
    )
    linger: Duration = Field(
        0.005, ge=0, le=10, description="How long the producer waits to fill a partition's batch.", examples=["5ms"]
    )
    max_batch_size: Size = Field(
        512 * 1024,
        ge=1024,
        le=kafka_limits.MAX_REQUEST_SIZE,
        description="Largest record batch per partition the producer builds (before compression).",
        examples=["512KiB"],
    )
    request_timeout: Duration = Field(
        30.0,
        gt=0,
        le=300,
        description="How long to wait for a broker's answer or the topic's metadata before the records are retried.",
        examples=["30s"],
    )
    client_id: str = Field("node-collector", description="Client id the brokers log.", examples=["node-collector"])
    tls: KafkaTls | None = Field(
        None, description="TLS to the brokers (see the README).", examples=[{"ca_file": "/etc/ssl/kafka-ca.pem"}]
    )
    sasl: KafkaSasl | None = Field(
        None,
        description="SASL authentication: PLAIN, SCRAM-SHA-256/512 or AWS_MSK_IAM (see the README).",
        examples=[{"mechanism": "SCRAM-SHA-512", "username": "collector", "password": "${KAFKA_PASSWORD}"}],
    )

    @field_validator("topic", "key")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return None if value is None else check_record_template(value)

    @field_validator("tls")
    @classmethod
    def _tls(cls, value: KafkaTls | None) -> KafkaTls | None:
        if value is not None and value.server_name is not None:
            raise ValueError(
                "`tls.server_name` is not used by the kafka output: each broker is verified by its host name"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, field in value.items():
            if not name or not field:
                raise ValueError("header names and fields must not be empty")
        return value


def _field(record: Any, path: str) -> Any:
    if not isinstance(record, dict):
        return None
    value = record.get(path)
    if value is None and "." in path:
        value = record
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
            if value is None:
                break
    return value


def _header_value(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value, default=str)


def _as_dict(record: Any) -> dict[str, Any]:
    if isinstance(record, dict):
        return record
    to_dict = getattr(record, "to_dict", None)
    return to_dict() if to_dict is not None else {}


class KafkaOutput(Output):
    type_name: ClassVar[str] = "kafka"
    description: ClassVar[str] = "Sends records to Kafka topics (aiokafka): idempotent, acks=all, keys, headers."
    Config: ClassVar[type[KafkaConfig]] = KafkaConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    limits = kafka_limits.LIMITS
    default_batch_timeout: ClassVar[float] = 0.2
    default_max_events: ClassVar[int | None] = 10_000
    default_max_bytes: ClassVar[int | None] = 16 * 1024 * 1024

    config: KafkaConfig

    def __init__(self, config: KafkaConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        host = ctx.host.as_dict()
        self._encode = blob_encoder(config.format, False)
        self._topic = RecordTemplate(config.topic, host)
        self._key = None if config.key is None else RecordTemplate(config.key, host)
        self._headers = list(config.headers.items())
        self._producer: Any = None
        self._discarding: set[asyncio.Task[None]] = set()
        self._round_robin = 0
        self._key_partitions: dict[tuple[str, int], dict[str, int]] = {}
        self._murmur2: Any = None
        self.requests = 0
        """Driver requests handed to the producer."""
        self.records_sent = 0
        """Records the broker acknowledged."""
        self.records_failed = 0
        """Records refused or not acknowledged (retried or dead-lettered)."""

    def counters(self) -> dict[str, float]:
        return {"requests": self.requests, "records_sent": self.records_sent, "records_failed": self.records_failed}

    def record_size(self, record: Any) -> int:
        # What counts against the record limit: value, key, header names and values (limits.py has the framing).
        message = record.get("message") if self.config.format == "raw" and isinstance(record, dict) else None
        if isinstance(message, str):
            size = len(message) if message.isascii() else len(message.encode())
        elif isinstance(message, bytes):
            size = len(message)
        else:
            size = len(self._encode([record])[0])
        if self._key is None and not self._headers:
            return size
        fields = _as_dict(record)
        if self._key is not None:
            size += len(self._key.render(fields).encode())
        for name, path in self._headers:
            value = _field(fields, path)
            if value is not None:
                size += len(name) + len(_header_value(value))
        return size

    async def start(self) -> None:
        # Import the client (and check the codec is installed) now, so a missing library fails the start.
        from collector_plugins.outputs.kafka import errors  # noqa: F401

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._discard(producer)
        if self._discarding:
            await asyncio.gather(*self._discarding, return_exceptions=True)

    def _abandon(self, producer: Any) -> None:
        """Drop a producer whose records were not acknowledged in time; the next send starts a new one.

        Its queued batches go with it: the driver resends those records, so they are neither held twice
        in memory during a long outage nor sent again by the old producer when the broker returns.
        """
        if self._producer is producer:
            self._producer = None
            task = asyncio.create_task(self._discard(producer))
            self._discarding.add(task)
            task.add_done_callback(self._discarding.discard)

    @staticmethod
    async def _discard(producer: Any) -> None:
        # `stop()` waits until every queued batch is sent, which never happens while the broker is away:
        # cancel the sender first (aiokafka's own close of it), then stop and close the connections.
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            await sender.close()
        await producer.stop()

    async def producer(self) -> Any:
        """The started producer; a broker that cannot be reached is a retry of the whole request."""
        if self._producer is not None:
            return self._producer
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        config = self.config
        producer = AIOKafkaProducer(
            bootstrap_servers=config.bootstrap_servers,
            client_id=config.client_id,
            acks=config.acks if config.acks == "all" else 1,
            enable_idempotence=config.idempotent,
            compression_type=None if config.compression == "none" else config.compression,
            linger_ms=int(config.linger * 1000),
            max_batch_size=int(config.max_batch_size),
            max_request_size=kafka_limits.MAX_REQUEST_SIZE,
            request_timeout_ms=int(config.request_timeout * 1000),
            **producer_settings(config.tls, config.sasl),
        )
        from aiokafka.partitioner import murmur2

        self._murmur2 = murmur2
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            await producer.stop()
            raise RetryableError(f"cannot reach the brokers: {type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled mid-start (stop, reload): close the connections start opened
            await producer.stop()
            raise
        self._producer = producer
        return producer

    async def write(self, batch: Batch) -> None:
        """Deliver the whole batch once or raise (for callers outside the driver, which uses `send`)."""
        raise_unless_delivered(await self.send(batch))

    async def send(self, batch: Batch) -> SendResult:
        records = batch.records
        if not records:
            return SendResult.ok()
        from collector_plugins.outputs.kafka.errors import outcome_of, reason_of

        producer = await self.producer()
        self.requests += 1
        n = len(records)
        outcomes: list[Outcome] = [Outcome.OK] * n
        reasons: list[str] = [""] * n
        by_topic = self._by_topic(records if batch.kind != "metrics" else [_as_dict(r) for r in records])
        values = self._encode(records)
        # Records are packed into record batches here, one per partition at a time (`send_batch`), rather than
        # handed to `producer.send` one by one: aiokafka's per-record path costs more than everything else.
        futures: dict[asyncio.Future[Any], list[int]] = {}
        for topic, indices in by_topic.items():
            if not valid_topic(topic):
                for i in indices:
                    outcomes[i], reasons[i] = Outcome.DROP, f"invalid topic name {topic!r}"
                continue
            try:
                for partition, part in self._by_partition(producer, topic, indices, records).items():
                    await self._send_partition(producer, topic, partition, part, records, values, futures)
            except Exception as exc:  # metadata timeout (the cluster is away), closed producer
                outcome, reason = outcome_of(exc), reason_of(exc)
                sent = {i for part in futures.values() for i in part}
                for i in indices:
                    if i not in sent:
                        outcomes[i], reasons[i] = outcome, reason
        if futures:
            # aiokafka never expires a batch whose partition leader is known but unreachable: bound the wait.
            wait = self.config.request_timeout + self.config.linger
            _, late = await asyncio.wait(futures, timeout=wait)
            if late:
                self._abandon(producer)
            for future, part in futures.items():
                if future in late:
                    outcome, reason = Outcome.RETRY, f"no acknowledgement within {wait:g}s"
                elif (error := future.exception()) is not None:
                    outcome, reason = outcome_of(error), reason_of(error)
                else:
                    continue
                for i in part:
                    outcomes[i], reasons[i] = outcome, reason
        failed = sum(1 for o in outcomes if o is not Outcome.OK)
        self.records_sent += n - failed
        self.records_failed += failed
        if not failed:
            return SendResult.ok()
        if failed == n and all(o is Outcome.RETRY for o in outcomes):
            return SendResult.retry(reasons[0])
        return SendResult.partial(outcomes, reasons)

    def _by_topic(self, records: list[Any]) -> dict[str, list[int]]:
        template = self._topic
        if template.static:
            return {template.render({}): list(range(len(records)))}
        groups: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            groups.setdefault(template.render(record), []).append(i)
        return groups

    def _by_partition(self, producer: Any, topic: str, indices: list[int], records: list[Any]) -> dict[int, list[int]]:
        """Record indices per partition: by key (murmur2, as the Java client), else one partition per request."""
        cluster = producer.client.cluster
        partitions = cluster.partitions_for_topic(topic)
        if not partitions:
            return {-1: indices}  # metadata unknown yet: `_send_partition` waits for it and partitions then
        if self._key is None:
            available = sorted(cluster.available_partitions_for_topic(topic) or partitions)
            self._round_robin += 1
            return {available[self._round_robin % len(available)]: indices}
        ordered = sorted(partitions)
        cache = self._key_partitions.setdefault((topic, len(ordered)), {})
        if len(cache) > 100_000:
            cache.clear()
        render, murmur2 = self._key.render, self._murmur2
        groups: dict[int, list[int]] = {}
        for i in indices:
            key = render(records[i] if isinstance(records[i], dict) else _as_dict(records[i]))
            partition = cache.get(key)
            if partition is None:
                partition = cache[key] = ordered[(murmur2(key.encode()) & 0x7FFFFFFF) % len(ordered)]
            groups.setdefault(partition, []).append(i)
        return groups

    async def _send_partition(
        self,
        producer: Any,
        topic: str,
        partition: int,
        indices: list[int],
        records: list[Any],
        values: list[bytes],
        futures: dict[asyncio.Future[Any], list[int]],
    ) -> None:
        if partition < 0:
            await producer.partitions_for(topic)  # waits for the topic's metadata (KafkaTimeoutError if none)
            for p, part in self._by_partition(producer, topic, indices, records).items():
                if p < 0:
                    raise RuntimeError(f"topic {topic!r} has no partitions")
                await self._send_partition(producer, topic, p, part, records, values, futures)
            return
        key_template, header_fields = self._key, self._headers
        builder = producer.create_batch()
        members: list[int] = []
        for i in indices:
            record = records[i] if isinstance(records[i], dict) else _as_dict(records[i])
            key = None if key_template is None else key_template.render(record).encode()
            headers: list[tuple[str, bytes]] = []
            if header_fields:
                headers = [
                    (name, _header_value(value))
                    for name, path in header_fields
                    if (value := _field(record, path)) is not None
                ]
            ts = record.get("timestamp")
            timestamp = int(ts * 1000) if isinstance(ts, int | float) and 0 <= ts < _MAX_TIMESTAMP else None
            if builder.append(timestamp=timestamp, key=key, value=values[i], headers=headers) is None:
                futures[await producer.send_batch(builder, topic, partition=partition)] = members
                builder, members = producer.create_batch(), []
                # An empty batch takes its first record whatever its size (aiokafka's DefaultRecordBatchBuilder).
                builder.append(timestamp=timestamp, key=key, value=values[i], headers=headers)
            members.append(i)
        if members:
            futures[await producer.send_batch(builder, topic, partition=partition)] = members
