"""/healthz and /readyz verdicts (collector/health.py), from real supervision and real buffers."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from collector import supervisor
from collector.api import Component
from collector.buffer.base import BufferCondition
from collector.buffer.memory import MemoryBuffer
from collector.health import HealthPolicy, liveness_problems, readiness_problems
from collector.log import RepeatLimiter
from collector.stats import ComponentStats
from collector.supervisor import Supervised
from collector.testing import component_context, wait_for
from tests.unit.buffer.helpers import log_batch, make_buffer

POLICY = HealthPolicy(restart_limit=3, restart_window=60.0, wedged_after=30.0, full_after=5.0)


def output_with(condition: BufferCondition) -> ComponentStats:
    st = ComponentStats("out", "outputs", "gate")
    st.buffer = dict
    st.buffer_condition = lambda: condition
    return st


class Crashing(Component):
    type_name = "crashing"
    description = "raises as soon as it runs"


async def test_a_restart_loop_fails_liveness_and_heals_after_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor, "INITIAL_BACKOFF", 0.001)
    monkeypatch.setattr(supervisor, "MAX_BACKOFF", 0.001)
    stats = ComponentStats("flaky", "processors", "crashing")
    ctx = component_context("flaky", tmp_path)

    async def body(sup: Supervised) -> None:
        raise RuntimeError("broken")

    sup = Supervised("flaky", lambda: Crashing(None, ctx), body, stats, logging.getLogger("t"), RepeatLimiter())
    task = asyncio.create_task(sup.run())
    try:
        await wait_for(lambda: stats.restarts >= POLICY.restart_limit, timeout=5)
        problems = liveness_problems([stats], POLICY)
        assert len(problems) == 1 and "flaky: restarted" in problems[0] and "restart loop" in problems[0]
        assert "RuntimeError: broken" in problems[0]
    finally:
        sup.request_stop()
        await asyncio.wait_for(task, 5)
    # The same restarts, once they are older than the window, are history, not a loop.
    assert liveness_problems([stats], POLICY, now=time.monotonic() + POLICY.restart_window + 1) == []
    assert readiness_problems([stats], POLICY) == []  # a restart loop is a liveness matter


def test_a_few_restarts_are_not_a_loop() -> None:
    st = ComponentStats("out", "outputs", "gate")
    for _ in range(POLICY.restart_limit - 1):
        st.restarted()
    assert liveness_problems([st], POLICY) == []


def test_a_buffer_refusing_data_with_nothing_to_deliver_is_wedged() -> None:
    now = time.monotonic()
    failing = BufferCondition(False, "write_failing", now - 31, "ENOSPC: No space left on device", 0)
    problems = liveness_problems([output_with(failing)], POLICY, now)
    assert len(problems) == 1 and "out: buffer wedged" in problems[0] and "ENOSPC" in problems[0]
    # Not yet for long enough; or the output still has data to deliver (delivering it frees room).
    recent = BufferCondition(False, "write_failing", now - 29, "ENOSPC", 0)
    assert liveness_problems([output_with(recent)], POLICY, now) == []
    outage = BufferCondition(False, "full", now - 3600, None, pending_events=5000)
    assert liveness_problems([output_with(outage)], POLICY, now) == []


def test_readiness_fails_at_once_on_write_errors_and_after_a_while_when_full() -> None:
    now = time.monotonic()
    failing = BufferCondition(False, "write_failing", now, "EIO: Input/output error", 10)
    problems = readiness_problems([output_with(failing)], POLICY, now)
    assert problems == ["out: cannot accept data: disk buffer cannot write (EIO: Input/output error) for 0s"]
    burst = BufferCondition(False, "full", now - 4, None, 10)
    assert readiness_problems([output_with(burst)], POLICY, now) == []
    full = BufferCondition(False, "full", now - 6, None, 10)
    assert readiness_problems([output_with(full)], POLICY, now) == ["out: cannot accept data: buffer full for 6s"]
    assert readiness_problems([output_with(BufferCondition(True))], POLICY, now) == []


async def test_conditions_come_from_the_real_buffers(tmp_path: Path) -> None:
    mem = MemoryBuffer(max_events=1, max_bytes=1 << 20, when_full="block", on_drop=lambda r, n: None)
    st = ComponentStats("mem", "outputs", "gate")
    st.buffer, st.buffer_condition = mem.metrics, mem.condition
    await mem.push(log_batch(0))
    blocked = asyncio.create_task(mem.push(log_batch(1)))
    await wait_for(lambda: not mem.condition().accepting, timeout=2)
    assert readiness_problems([st], HealthPolicy(full_after=0.0)) != []
    assert st.snapshot()["buffer"]["condition"] == "full"
    unit = await mem.pop()
    assert unit is not None
    mem.ack(unit)
    await asyncio.wait_for(blocked, 2)
    assert readiness_problems([st], HealthPolicy(full_after=0.0)) == []

    disk = make_buffer(tmp_path)
    await disk.open()
    st.buffer, st.buffer_condition = disk.metrics, disk.condition
    snap = st.snapshot()["buffer"]
    assert snap["accepting"] is True and snap["condition"] == "ok" and snap["write_errors"] == 0
    await disk.close()
