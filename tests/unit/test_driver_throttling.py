"""The driver's answer to THROTTLED: the output's send rate limit, and per-request backoff episodes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from unittest import mock

from collector.send_result import Outcome, RetryableError, SendResult
from collector.testing import wait_for
from tests.unit.test_driver import Harness, records


async def test_throttled_answers_turn_the_send_rate_limit_on_outages_do_not(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.output.script = [SendResult.retry("503"), RetryableError("reset"), None]
    task = h.start()
    await h.feed(records(3))
    await wait_for(lambda: h.settled(3))
    assert not h.runner.send_rate.enabled  # an outage only backs off
    h.output.script = [
        SendResult.throttle("ThrottlingException: Rate exceeded"),
        RetryableError("SlowDown", throttled=True),
        SendResult.partial([Outcome.OK, Outcome.RETRY], ["", "ProvisionedThroughputExceeded"], throttled=True),
        None,
    ]
    with mock.patch("collector.send_rate.MIN_RATE", 200.0):  # the limit paces without slowing the test
        await h.feed(records(2, start=3))
        await wait_for(lambda: h.settled(5))
    rate = h.runner.send_rate
    assert rate.enabled and rate.throttled == 3
    assert h.stats.sent_events == 5 and h.stats.retries == 5
    task.cancel()


async def test_backoff_restarts_when_an_outage_turns_into_throttling(tmp_path: Path) -> None:
    h = Harness(tmp_path, retry={"initial_backoff": 1.0, "max_backoff": 20.0})
    h.output.script = [SendResult.retry("503")] * 4 + [SendResult.throttle("Throttling")] + [None]
    caps: list[float] = []

    def uniform(low: float, high: float) -> float:
        caps.append(high)
        return 0.0  # no real waiting

    with mock.patch("collector.output_driver.random.uniform", uniform):
        task = h.start()
        await h.feed(records(1))
        await wait_for(lambda: h.settled(1))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # 4 outage retries double up to 8 s; the first throttled answer starts a new episode at 1 s.
    assert caps == [1.0, 2.0, 4.0, 8.0, 1.0]


async def test_backoff_is_capped_and_restarts_after_progress(tmp_path: Path) -> None:
    h = Harness(tmp_path, retry={"initial_backoff": 1.0, "max_backoff": 4.0})
    part = SendResult.partial([Outcome.OK, Outcome.RETRY, Outcome.RETRY], ["", "x", "x"])
    h.output.script = [SendResult.retry("503")] * 4 + [part, SendResult.retry("503"), None]
    caps: list[float] = []

    def uniform(low: float, high: float) -> float:
        caps.append(high)
        return 0.0

    with mock.patch("collector.output_driver.random.uniform", uniform):
        task = h.start()
        await h.feed(records(3))
        await wait_for(lambda: h.settled(3))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # Capped at max_backoff; the partial success (one record delivered) restarts the exponent.
    assert caps == [1.0, 2.0, 4.0, 4.0, 1.0, 2.0]
