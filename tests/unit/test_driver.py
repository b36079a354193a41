"""The output driver: batching within limits, retries, partial failures, dead letters, shutdown."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import Field

from collector.api import ALL_KINDS, Output, OutputConfig
from collector.buffer.memory import MemoryBuffer
from collector.channel import Channel
from collector.dlq import DeadLetterQueue, dead_letter_files, dlq_dir, read_dead_letters
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner, effective_limits
from collector.output_limits import Limit, OutputLimits
from collector.send_result import Outcome, PermanentError, RetryableError, SendResult
from collector.stats import ComponentStats
from collector.testing import component_context, wait_for


class ScriptedConfig(OutputConfig):
    type: Literal["scripted"] = Field(description="Plugin type.", examples=["scripted"])


class Scripted(Output):
    """Answers each send with the next entry of `script` (a SendResult, an exception or a callable)."""

    type_name = "scripted"
    description = "Test output."
    Config = ScriptedConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS
    limits = OutputLimits(
        max_events=Limit(5, "test", "2026-11-26"),
        max_bytes=Limit(100, "test", "2026-11-26"),
        max_record_bytes=Limit(40, "test", "2026-11-26"),
    )

    def __init__(self, config: Any, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.script: list[Any] = []
        self.requests: list[list[Any]] = []

    def record_size(self, record: Any) -> int:
        return len(record["message"]) + 2  # an API-style per-record overhead

    async def send(self, batch: Batch) -> SendResult | None:
        self.requests.append(list(batch.records))
        step = self.script.pop(0) if self.script else None
        if callable(step):
            step = step(batch)
        if isinstance(step, Exception):
            raise step
        return step


def records(n: int, start: int = 0, size: int = 8) -> list[dict[str, Any]]:
    return [{"message": f"{i:0{size}d}"} for i in range(start, start + n)]


class Harness:
    def __init__(self, tmp_path: Path, buffer_kind: str = "memory", **config: Any) -> None:
        self.stats = ComponentStats("out", "outputs", "scripted")
        self.buffer = MemoryBuffer(max_events=10_000, max_bytes=10**7, when_full="block", on_drop=self.stats.drop)
        self.buffer.kind = buffer_kind
        self.channel = Channel("out")
        self.dlq = DeadLetterQueue(dlq_dir(tmp_path, "out"), "out", 10**6)
        self.runner = OutputRunner(
            "out", self.channel, self.buffer, self.dlq, self.stats, logging.getLogger("t"), RepeatLimiter(60)
        )
        body = {"type": "scripted", "inputs": ["x"], "retry": {"initial_backoff": 0.01, "max_backoff": 0.02}}
        body.update(config)
        self.config = ScriptedConfig.model_validate(body)
        self.output = Scripted(self.config, component_context("out", tmp_path))
        self.stopping = asyncio.Event()
        self.tmp_path = tmp_path

    def start(self) -> asyncio.Task[None]:
        self.runner.start_intake()
        return asyncio.create_task(self.runner.deliver(self.output, self.config, self.stopping))

    async def feed(self, *batches: list[dict[str, Any]]) -> None:
        for recs in batches:
            await self.channel.send(Batch(LOGS, recs, nbytes=sum(len(r["message"]) for r in recs)))

    def settled(self, received: int) -> bool:
        """Everything fed so far has been taken in and resolved."""
        return self.stats.received_events == received and self.buffer.pending_events == 0

    def dead(self) -> list[dict[str, Any]]:
        self.dlq.close()
        return [e for f in dead_letter_files(self.tmp_path, "out") for e in read_dead_letters(f)]


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., Harness]:
    return lambda **kw: Harness(tmp_path, **kw)


def test_user_limits_only_lower_the_declared_ones() -> None:
    config = ScriptedConfig.model_validate({"type": "scripted", "inputs": ["x"], "batch": {"max_events": 3}})
    assert effective_limits(Scripted, config).max_events == 3
    config = ScriptedConfig.model_validate({"type": "scripted", "inputs": ["x"], "batch": {"max_events": 50}})
    assert effective_limits(Scripted, config).max_events == 5


async def test_requests_respect_event_byte_and_record_limits(make: Callable[..., Harness]) -> None:
    h = make()
    task = h.start()
    big = {"message": "y" * 39}  # 41 counted bytes > 40: can never be sent
    await h.feed([*records(6), big, *records(6, start=6)])
    await wait_for(lambda: h.stats.sent_events == 12 and h.settled(13))
    sizes = [len(r) for r in h.output.requests]
    assert all(n <= 5 for n in sizes)
    assert all(sum(len(x["message"]) + 2 for x in req) <= 100 for req in h.output.requests)
    assert [r["message"] for req in h.output.requests for r in req] == [r["message"] for r in records(12)]
    assert h.stats.dropped == {"dead_lettered": 1}
    assert [e["reason"] for e in h.dead()] == ["record_too_large"]
    task.cancel()


async def test_retry_then_success_with_retry_after(make: Callable[..., Harness]) -> None:
    h = make()
    h.output.script = [SendResult.retry("throttled", retry_after=0.05), RetryableError("503"), None]
    task = h.start()
    await h.feed(records(3))
    await wait_for(lambda: h.stats.sent_events == 3)
    assert len(h.output.requests) == 3 and h.stats.retries == 2
    assert h.buffer.pending_events == 0  # acknowledged once delivered
    task.cancel()


async def test_partial_failure_resends_only_what_failed(make: Callable[..., Harness]) -> None:
    h = make()
    ok, retry, drop = Outcome.OK, Outcome.RETRY, Outcome.DROP
    h.output.script = [
        SendResult.partial([ok, retry, drop, retry], ["", "throttled", "invalid", "throttled"]),
        SendResult.partial([retry, ok], ["again", ""]),
        None,
    ]
    task = h.start()
    await h.feed(records(4))
    await wait_for(lambda: h.settled(4))
    sent = [[r["message"] for r in req] for req in h.output.requests]
    assert sent == [["00000000", "00000001", "00000002", "00000003"], ["00000001", "00000003"], ["00000001"]]
    assert h.stats.sent_events == 3
    dead = h.dead()
    assert [(e["record"]["message"], e["reason"]) for e in dead] == [("00000002", "invalid")]
    task.cancel()


async def test_dead_letters_that_cannot_be_written_are_counted_and_logged_once(
    make: Callable[..., Harness], caplog: pytest.LogCaptureFixture
) -> None:
    h = make(retry={"initial_backoff": 0.001, "max_backoff": 0.002, "max_retries": 0})

    def disk_full(*_: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    h.dlq.write = disk_full  # type: ignore[method-assign]
    h.output.script = [PermanentError("invalid")] * 3
    task = h.start()
    for n in range(3):
        await h.feed(records(2, start=2 * n))
        await wait_for(lambda n=n: h.settled(2 * (n + 1)))
    assert h.stats.dropped == {"dead_letter_failed": 6}  # not counted as kept, nor as a full queue
    failures = [r for r in caplog.records if "cannot write dead letters" in r.getMessage()]
    assert len(failures) == 1  # once per interval, not per batch
    task.cancel()


async def test_permanent_errors_and_exhausted_retries_go_to_dead_letters(make: Callable[..., Harness]) -> None:
    h = make(retry={"initial_backoff": 0.001, "max_backoff": 0.002, "max_retries": 2})
    h.output.script = [
        PermanentError("AccessDenied: logs:PutLogEvents"),
        RetryableError("down"),
        RetryableError("down"),
        RetryableError("down"),
    ]
    task = h.start()
    await h.feed(records(2))
    await wait_for(lambda: h.settled(2))
    await h.feed(records(1, start=2))
    await wait_for(lambda: h.settled(3))
    reasons = [e["reason"] for e in h.dead()]
    assert reasons == ["AccessDenied: logs:PutLogEvents"] * 2 + ["retries_exhausted: down"]
    assert h.stats.sent_events == 0
    task.cancel()


async def test_unexpected_exception_is_retried(make: Callable[..., Harness]) -> None:
    h = make()
    h.output.script = [ValueError("bug in the output"), None]
    task = h.start()
    await h.feed(records(2))
    await wait_for(lambda: h.stats.sent_events == 2)
    assert h.stats.retries == 1
    task.cancel()


async def test_stop_leaves_unacknowledged_units_for_the_next_run(make: Callable[..., Harness]) -> None:
    h = make()
    h.output.script = [RetryableError("down")] * 1000
    task = h.start()
    await h.feed(records(3))
    await wait_for(lambda: h.stats.retries >= 2)
    h.stopping.set()
    await asyncio.wait_for(task, 2)
    assert h.buffer.pending_events == 3
    h.output.script = []
    h.stopping.clear()
    task = asyncio.create_task(h.runner.deliver(h.output, h.config, h.stopping))
    await wait_for(lambda: h.stats.sent_events == 3 and h.buffer.pending_events == 0)
    task.cancel()


async def test_shutdown_with_a_disk_buffer_gives_up_instead_of_retrying(make: Callable[..., Harness]) -> None:
    h = make(buffer_kind="disk")
    h.output.script = [RetryableError("down")] * 1000
    h.runner.shutting_down = True
    task = h.start()
    await h.feed(records(3))
    await asyncio.wait_for(task, 2)  # returns by itself: the data stays in the buffer
    assert h.buffer.pending_events == 3 and len(h.output.requests) == 1


async def test_concurrency_acknowledges_out_of_order(make: Callable[..., Harness]) -> None:
    h = make(concurrency=3)
    gates = [asyncio.Event() for _ in range(3)]

    async def send(batch: Batch) -> SendResult | None:
        h.output.requests.append(list(batch.records))
        await gates[len(h.output.requests) - 1].wait()
        return None

    h.output.send = send  # type: ignore[method-assign]
    task = h.start()
    await h.feed(records(5), records(5, start=5), records(5, start=10))
    await wait_for(lambda: len(h.output.requests) == 3)  # three requests in flight at once
    gates[2].set()
    await wait_for(lambda: h.stats.sent_events == 5)
    assert h.buffer.pending_events == 10  # the third unit is acknowledged while the first two are not
    gates[0].set()
    gates[1].set()
    await wait_for(lambda: h.buffer.pending_events == 0)
    task.cancel()


def test_batch_settings_cannot_exceed_declared_limits() -> None:
    from collector.config import ConfigError, parse_config
    from collector.registry import Registry
    from tests.unit.fakes import CountingInput

    registry = Registry()
    registry.add(CountingInput)
    registry.add(Scripted)
    text = "inputs: {a: {type: counting}}\noutputs:\n  o: {type: scripted, inputs: [a], batch: {max_events: 6}}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", registry, environ={})
    (issue,) = info.value.issues
    assert issue.key_path == "outputs.o.batch.max_events"
    assert issue.message == "6 is above the destination's limit of 5"
    assert issue.hint == "see test (checked 2026-11-26); lower it or leave it unset"
    parse_config(text.replace("max_events: 6", "max_events: 5"), "c.yaml", registry, environ={})
