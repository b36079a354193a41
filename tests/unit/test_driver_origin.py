"""The driver's request identity (`Batch.origin`), request age (`batch.timeout`) and output-owned defaults.

Outputs that name what they write (S3 object keys) rely on these: a request
replayed after a rewind or a restart starts with the same origin, and a
request is sent at the latest `timeout` after its first record, however
steadily records keep arriving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from collector.api import ALL_KINDS, Output, OutputConfig
from collector.buffer.memory import MemoryBuffer
from collector.channel import Channel
from collector.dlq import DeadLetterQueue, dlq_dir
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner, effective_limits
from collector.output_limits import Limit, OutputLimits
from collector.send_result import RetryableError, SendResult
from collector.stats import ComponentStats
from collector.testing import component_context, wait_for
from tests.unit.buffer.helpers import drain, log_batch, make_buffer


class RecordingConfig(OutputConfig):
    type: Literal["recording"] = Field(description="Plugin type.", examples=["recording"])


class Recording(Output):
    """Keeps (origin, messages) per send; answers with the next scripted result."""

    type_name = "recording"
    description = "Test output."
    Config = RecordingConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS
    default_max_events = 4

    def __init__(self, config: Any, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.sends: list[tuple[str | None, list[Any]]] = []
        self.sent_at: list[float] = []  # loop time of each send
        self.script: list[Any] = []

    async def send(self, batch: Batch) -> SendResult | None:
        self.sends.append((batch.origin, [r["message"] for r in batch.records]))
        self.sent_at.append(asyncio.get_running_loop().time())
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        return step


def runner_for(tmp_path: Path, buffer: Any) -> tuple[OutputRunner, Channel, ComponentStats]:
    stats = ComponentStats("out", "outputs", "recording")
    channel = Channel("out")
    dlq = DeadLetterQueue(dlq_dir(tmp_path, "out"), "out", 10**6)
    runner = OutputRunner("out", channel, buffer, dlq, stats, logging.getLogger("t"), RepeatLimiter(60))
    return runner, channel, stats


def config(**body: Any) -> RecordingConfig:
    base = {"type": "recording", "inputs": ["x"], "retry": {"initial_backoff": 0.001, "max_backoff": 0.002}}
    return RecordingConfig.model_validate({**base, **body})


def messages(first: int, n: int) -> Batch:
    recs = [{"message": f"m{i}"} for i in range(first, first + n)]
    return Batch(LOGS, recs, nbytes=2 * n)


async def test_disk_units_keep_their_origin_across_a_restart(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path / "b")
    await buf.open()
    for i in range(3):
        await buf.push(log_batch(i * 10, 2))
    first = drain(buf)
    buf.rewind()
    again = drain(buf)
    await buf.close()
    reopened = make_buffer(tmp_path / "b")
    await reopened.open()
    after_restart = drain(reopened)
    await reopened.close()
    origins = [u.origin for u in first]
    assert len(set(origins)) == 3 and all(origins)
    assert [u.origin for u in again] == origins
    assert [u.origin for u in after_restart] == origins  # nothing was acknowledged: the same frames, same names


async def test_a_recreated_buffer_directory_never_reuses_an_origin(tmp_path: Path) -> None:
    buf = make_buffer(tmp_path / "b")
    await buf.open()
    await buf.push(log_batch(0, 1))
    (old,) = drain(buf)
    await buf.close()
    closed_ms = int(time.time() * 1000)
    await wait_for(lambda: int(time.time() * 1000) > closed_ms)  # a later millisecond, as any restart is
    fresh = make_buffer(tmp_path / "fresh")  # same segment and offset as the first frame of `b`
    await fresh.open()
    await fresh.push(log_batch(0, 1))
    (new,) = drain(fresh)
    await fresh.close()
    assert old.origin.split("-")[1:] == new.origin.split("-")[1:]
    assert old.origin != new.origin


async def test_memory_units_keep_their_origin_across_a_rewind() -> None:
    buf = MemoryBuffer(max_events=100, max_bytes=10**6, when_full="block", on_drop=lambda r, n: None)
    for i in range(2):
        await buf.push(messages(i, 1))
    first = [await buf.pop(), await buf.pop()]
    buf.rewind()
    again = [await buf.pop(), await buf.pop()]
    assert [u.origin for u in again if u] == [u.origin for u in first if u]
    assert len({u.origin for u in first if u}) == 2


async def test_each_request_carries_its_first_records_origin_through_retries(tmp_path: Path) -> None:
    buffer = MemoryBuffer(max_events=100, max_bytes=10**6, when_full="block", on_drop=lambda r, n: None)
    runner, channel, stats = runner_for(tmp_path, buffer)
    output = Recording(config(), component_context("out", tmp_path))
    output.script = [RetryableError("503"), None]
    # Six records in one unit, four per request (the output's default): split at record 4.
    await buffer.push(messages(0, 6))
    unit = await buffer.pop()
    assert unit is not None
    buffer.rewind()
    buffer.close_intake()
    await runner.deliver(output, config(), asyncio.Event())
    assert output.sends == [
        (unit.origin, ["m0", "m1", "m2", "m3"]),
        (unit.origin, ["m0", "m1", "m2", "m3"]),  # the retry is the same batch, with the same origin
        (f"{unit.origin}-4", ["m4", "m5"]),
    ]
    assert stats.sent_events == 6
    del channel


async def test_a_resent_subset_has_no_origin(tmp_path: Path) -> None:
    from collector.send_result import Outcome

    buffer = MemoryBuffer(max_events=100, max_bytes=10**6, when_full="block", on_drop=lambda r, n: None)
    runner, _, _ = runner_for(tmp_path, buffer)
    output = Recording(config(), component_context("out", tmp_path))
    output.script = [SendResult.partial([Outcome.OK, Outcome.RETRY], ["", "throttled"])]
    await buffer.push(messages(0, 2))
    buffer.close_intake()
    await runner.deliver(output, config(), asyncio.Event())
    assert [o is None for o, _ in output.sends] == [False, True]
    assert [m for _, m in output.sends] == [["m0", "m1"], ["m1"]]


async def test_timeout_is_the_age_of_a_request_not_an_idle_gap(tmp_path: Path) -> None:
    buffer = MemoryBuffer(max_events=1000, max_bytes=10**6, when_full="block", on_drop=lambda r, n: None)
    runner, channel, stats = runner_for(tmp_path, buffer)
    out_config = config(batch={"timeout": 0.3, "max_events": 1000})
    output = Recording(out_config, component_context("out", tmp_path))
    runner.start_intake()
    task = asyncio.create_task(runner.deliver(output, out_config, asyncio.Event()))
    loop = asyncio.get_running_loop()
    # A record every 50 ms for 1 s: never a 300 ms gap, so an idle timeout would never fire while they come.
    for i in range(20):
        await channel.send(messages(i, 1))
        await asyncio.sleep(0.05)  # not a wait: a record every 50 ms is the subject
    last_fed = loop.time()
    await wait_for(lambda: stats.sent_events == 20, timeout=3)
    assert output.sent_at[0] < last_fed  # sent while records kept arriving
    assert len(output.sends) >= 2
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_an_outputs_own_defaults_apply_until_the_user_sets_batch() -> None:
    assert effective_limits(Recording, config()).max_events == 4
    assert effective_limits(Recording, config(batch={"max_events": 50_000})).max_events == 50_000  # not capped
    assert effective_limits(Recording, config()).max_bytes == 10 * 1024 * 1024  # no own default: the driver's


def test_declared_limits_still_cap_and_local_defaults_are_unchanged() -> None:
    class Capped(Recording):
        limits = OutputLimits(max_events=Limit(10, "test", "2026-11-26"))

    class Local(Recording):
        default_max_events = None

    assert effective_limits(Capped, config(batch={"max_events": 50})).max_events == 10
    assert effective_limits(Capped, config()).max_events == 10
    assert effective_limits(Local, config(batch={"max_events": 5000})).max_events == 2000
