"""The supervisor on its own: restarts with a doubling backoff, failures logged once and counted, stops."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from collector import supervisor
from collector.api import Component
from collector.log import RepeatLimiter
from collector.stats import ComponentStats
from collector.supervisor import Supervised
from collector.testing import component_context, wait_for

LOG = logging.getLogger("test.supervisor")


class Probe(Component):
    """A component that records its lifecycle in the shared `events` list."""

    type_name = "probe"
    description = "Records start and stop."

    def __init__(self, events: list[str], ctx: object) -> None:
        super().__init__(None, ctx)  # type: ignore[arg-type]
        self.events = events

    async def start(self) -> None:
        self.events.append("start")

    async def stop(self) -> None:
        self.events.append("stop")


class Harness:
    """One `Supervised` whose body fails `failures` times, then returns (or waits for a stop if `forever`)."""

    def __init__(self, tmp_path: Path, failures: int, forever: bool = False) -> None:
        self.events: list[str] = []
        self.builds: list[float] = []  # loop time of each build
        self.failures = failures
        self.forever = forever
        self.stats = ComponentStats("comp-7", "inputs", "probe")
        self.ctx = component_context("comp-7", tmp_path)
        self.sup = Supervised("comp-7", self.build, self.body, self.stats, LOG, RepeatLimiter(60.0))

    def build(self) -> Component:
        self.builds.append(asyncio.get_running_loop().time())
        return Probe(self.events, self.ctx)

    async def body(self, sup: Supervised) -> None:
        self.events.append("body")
        if len(self.builds) <= self.failures:
            raise RuntimeError("disk on fire")
        if self.forever:
            await sup.stopping.wait()


@pytest.fixture
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> float:
    """The first backoff, shortened (the real 0.5 s would make these tests slow); it still doubles."""
    monkeypatch.setattr(supervisor, "INITIAL_BACKOFF", 0.05)
    return 0.05


async def test_a_failing_component_is_restarted_with_a_doubling_backoff(tmp_path: Path, short_backoff: float) -> None:
    h = Harness(tmp_path, failures=3)
    await asyncio.wait_for(h.sup.run(), 5)
    assert len(h.builds) == 4  # three failures, then a run that returns
    gaps = [b - a for a, b in zip(h.builds, h.builds[1:], strict=False)]
    slack = 0.005  # the event loop's timers fire up to a millisecond or so early
    assert [g >= short_backoff * 2**i - slack for i, g in enumerate(gaps)] == [True] * 3, gaps
    # Every instance, failed or finished, was started and stopped once: a fresh one each time.
    assert h.events == ["start", "body", "stop"] * 4
    assert (h.stats.errors, h.stats.restarts, h.stats.state) == (3, 3, "stopped")
    assert h.stats.last_error == "RuntimeError: disk on fire"
    assert h.sup.finished


async def test_a_repeated_failure_is_logged_once_with_the_component_and_counted_every_time(
    tmp_path: Path, short_backoff: float, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOG.name)
    h = Harness(tmp_path, failures=3)
    await asyncio.wait_for(h.sup.run(), 5)
    lines = [r for r in caplog.records if r.name == LOG.name]
    assert len(lines) == 1  # the same cause again within the interval is not logged again
    (line,) = lines
    assert line.getMessage() == "component failed; restarting it"
    fields = line.fields  # type: ignore[attr-defined]
    assert fields["component"] == "comp-7" and fields["component_type"] == "probe"
    assert fields["error"] == "RuntimeError: disk on fire"
    assert line.exc_info is not None and line.exc_info[0] is RuntimeError  # the traceback, the first time
    assert h.stats.errors == 3


async def test_another_cause_is_logged_too(
    tmp_path: Path, short_backoff: float, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOG.name)
    h = Harness(tmp_path, failures=3)
    body = h.body

    async def two_causes(sup: Supervised) -> None:
        if len(h.builds) == 3:
            raise ValueError("bad value")
        await body(sup)

    h.sup.body = two_causes
    await asyncio.wait_for(h.sup.run(), 5)
    errors = [r.fields["error"] for r in caplog.records if r.name == LOG.name]  # type: ignore[attr-defined]
    assert errors == ["RuntimeError: disk on fire", "ValueError: bad value"]
    assert h.stats.errors == 3 and h.stats.last_error == "ValueError: bad value"


async def test_a_stop_during_the_backoff_ends_supervision_at_once(tmp_path: Path) -> None:
    h = Harness(tmp_path, failures=100)  # real backoff: 0.5 s
    task = asyncio.create_task(h.sup.run())
    await wait_for(lambda: h.stats.state == "restarting" and h.events[-1:] == ["stop"])
    loop = asyncio.get_running_loop()
    asked = loop.time()
    h.sup.request_stop()
    await asyncio.wait_for(task, 5)
    assert loop.time() - asked < supervisor.INITIAL_BACKOFF  # did not sit out the backoff
    assert len(h.builds) == 1 and h.stats.restarts == 0 and h.stats.errors == 1
    assert h.events == ["start", "body", "stop"]
    assert h.sup.finished and h.stats.state == "stopped"


async def test_a_component_that_returns_is_stopped_once_and_not_restarted(tmp_path: Path) -> None:
    h = Harness(tmp_path, failures=0)
    await asyncio.wait_for(h.sup.run(), 5)
    assert h.events == ["start", "body", "stop"]
    assert (len(h.builds), h.stats.errors, h.stats.restarts) == (1, 0, 0)
    assert h.sup.finished and h.stats.state == "stopped"
    assert isinstance(h.sup.retired, Probe) and h.sup.instance is None


async def test_a_stop_request_ends_a_running_component_through_its_body(tmp_path: Path) -> None:
    h = Harness(tmp_path, failures=0, forever=True)
    stopped: list[bool] = []
    h.sup.on_stop_requested = lambda: stopped.append(True)
    task = asyncio.create_task(h.sup.run())
    await wait_for(lambda: h.stats.state == "running" and "body" in h.events)
    h.sup.request_stop()
    await asyncio.wait_for(task, 5)
    assert stopped == [True] and h.events == ["start", "body", "stop"] and h.stats.state == "stopped"


async def test_cancellation_stops_the_instance_and_propagates(tmp_path: Path) -> None:
    h = Harness(tmp_path, failures=0, forever=True)
    task = asyncio.create_task(h.sup.run())
    await wait_for(lambda: "body" in h.events)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.events == ["start", "body", "stop"] and h.stats.state == "cancelled"
    assert not h.sup.finished
