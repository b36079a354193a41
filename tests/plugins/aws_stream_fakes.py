"""Fakes of PutRecordBatch and PutRecords, and a driver harness, for the firehose and kinesis unit tests.

moto accepts Firehose calls of any size and still enforces the old Kinesis
request limit (5 MiB, raised to 10 MiB in 2025), and it never answers a
partial failure. These fakes follow the current API references instead,
errors included: a call over a limit raises the `InvalidArgumentException`
the service would, and a `plan` decides which records of a call fail with
which per-record error code. Every call is recorded for the assertions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from collector.api import Output, OutputConfig
from collector.buffer.memory import MemoryBuffer
from collector.channel import Channel
from collector.dlq import DeadLetterQueue, dead_letter_files, dlq_dir, read_dead_letters
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner
from collector.stats import ComponentStats
from collector.testing import component_context, wait_for

# call number (0-based), record index in that call -> per-record error code, or None when accepted
Plan = Callable[[int, int], str | None]
T = TypeVar("T")


def invalid_argument(operation: str, message: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": "InvalidArgumentException", "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400},
        },
        operation,
    )


def answer(
    plan: Plan | None, call: int, items: list[T], accepted: list[T], ok: Callable[[int], dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """Per-record answers and failure count of one call: the plan's error code, or `ok(i)` once the item is
    kept in `accepted`."""
    answers: list[dict[str, Any]] = []
    failed = 0
    for i, item in enumerate(items):
        code = plan(call, i) if plan else None
        if code:
            answers.append({"ErrorCode": code, "ErrorMessage": f"{code} for record {i}"})
            failed += 1
        else:
            accepted.append(item)
            answers.append(ok(i))
    return answers, failed


class FakeFirehose:
    """PutRecordBatch per the API reference: 1-500 records, Data <= 1,024,000 bytes, <= 4 MB per call."""

    def __init__(self, plan: Plan | None = None) -> None:
        self.plan = plan
        self.calls: list[list[bytes]] = []
        self.accepted: list[bytes] = []  # what a destination would have received, in order

    async def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> dict[str, Any]:
        data = [r["Data"] for r in Records]
        if not 1 <= len(data) <= 500:
            raise invalid_argument("PutRecordBatch", f"{len(data)} records: 1 to 500 allowed")
        if any(len(d) > 1_024_000 for d in data):
            raise invalid_argument("PutRecordBatch", "a record is larger than 1000 KiB")
        if sum(len(d) for d in data) > 4_000_000:
            raise invalid_argument("PutRecordBatch", "the request is larger than 4 MB")
        call = len(self.calls)
        self.calls.append(data)
        answers, failed = answer(self.plan, call, data, self.accepted, lambda i: {"RecordId": f"{call}-{i}"})
        return {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": answers}


class FakeKinesis:
    """PutRecords per the API reference: 1-500 records, <= 10 MiB per request and the stream's record size,
    both counting data plus partition key (UTF-8), keys of 1-256 characters."""

    def __init__(self, plan: Plan | None = None, max_record_size: int = 1024 * 1024) -> None:
        self.plan = plan
        self.max_record_size = max_record_size
        self.calls: list[list[tuple[bytes, str]]] = []
        self.accepted: list[tuple[bytes, str]] = []  # the stream's content, in arrival order

    async def put_records(self, Records: list[dict[str, Any]], **stream: str) -> dict[str, Any]:
        assert set(stream) in ({"StreamName"}, {"StreamARN"})
        entries = [(r["Data"], r["PartitionKey"]) for r in Records]
        if not 1 <= len(entries) <= 500:
            raise invalid_argument("PutRecords", f"{len(entries)} records: 1 to 500 allowed")
        sizes = [len(d) + len(k.encode()) for d, k in entries]
        if any(not 1 <= len(k) <= 256 for _, k in entries):
            raise invalid_argument("PutRecords", "partition key length outside 1-256")
        if any(s > self.max_record_size for s in sizes):
            raise invalid_argument("PutRecords", "record larger than the stream's maximum record size")
        if sum(sizes) > 10 * 1024 * 1024:
            raise invalid_argument("PutRecords", "request larger than 10 MiB")
        call = len(self.calls)
        self.calls.append(entries)
        answers, failed = answer(
            self.plan,
            call,
            entries,
            self.accepted,
            lambda i: {"SequenceNumber": str(len(self.accepted)), "ShardId": "shardId-000000000000"},
        )
        return {"FailedRecordCount": failed, "Records": answers}


class FakeClients:
    """Stands in for `AwsClients`: hands out the fake for every service."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake

    async def client(self, service: str) -> Any:
        return self.fake

    async def close(self) -> None:
        return None


class DriverHarness:
    """The real output driver (memory buffer, dead-letter queue) in front of an output.

    With a `fake`, the output's client is that fake; without, the output's own AWS clients are used
    (give `endpoint_url` in `body`).
    """

    def __init__(self, tmp_path: Path, output_cls: type[Output], body: dict[str, Any], fake: Any = None) -> None:
        self.stats = ComponentStats("out", "outputs", output_cls.type_name)
        self.buffer = MemoryBuffer(max_events=100_000, max_bytes=10**9, when_full="block", on_drop=self.stats.drop)
        self.channel = Channel("out")
        self.dlq = DeadLetterQueue(dlq_dir(tmp_path, "out"), "out", 10**9)
        self.runner = OutputRunner(
            "out", self.channel, self.buffer, self.dlq, self.stats, logging.getLogger("t"), RepeatLimiter(60)
        )
        full: dict[str, Any] = {"inputs": ["x"], "retry": {"initial_backoff": 0.001, "max_backoff": 0.002}}
        if "region" in output_cls.Config.model_fields:  # AWS outputs; others (kafka) have no region
            full["region"] = "eu-west-1"
        full.update(body)
        self.config: OutputConfig = output_cls.Config.model_validate(full)
        self.output = output_cls(self.config, component_context("out", tmp_path))
        if fake is not None:
            self.output.clients = FakeClients(fake)  # type: ignore[attr-defined]
        self.stopping = asyncio.Event()
        self.tmp_path = tmp_path
        self.fed = 0

    def start(self) -> asyncio.Task[None]:
        self.runner.start_intake()
        return asyncio.create_task(self.runner.deliver(self.output, self.config, self.stopping))

    async def run(self, *batches: list[Any], timeout: float = 10) -> None:
        """Start the output and the driver, feed `batches`, wait until all is resolved, stop."""
        await self.output.start()
        task = self.start()
        try:
            for records in batches:
                await self.feed(records)
            await wait_for(self.settled, timeout=timeout)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self.output.stop()

    async def feed(self, records: list[Any], nbytes: int | None = None) -> None:
        self.fed += len(records)
        await self.channel.send(Batch(LOGS, records, nbytes=len(records) if nbytes is None else nbytes))

    def settled(self, received: int | None = None) -> bool:
        """Everything fed so far (or `received` events) was taken in and resolved (delivered or dead-lettered)."""
        expected = self.fed if received is None else received
        return self.stats.received_events == expected and self.buffer.pending_events == 0

    def dead(self) -> list[dict[str, Any]]:
        self.dlq.close()
        return [e for f in dead_letter_files(self.tmp_path, "out") for e in read_dead_letters(f)]
