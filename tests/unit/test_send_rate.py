"""The adaptive send rate limit: off until throttled, cut on throttling, grown back on success."""

from __future__ import annotations

import asyncio

import pytest

from collector.send_rate import BETA, INCREASE, MIN_RATE, QUIET, SendRate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sending_at(rate: SendRate, clock: Clock, per_second: float, seconds: float) -> None:
    """Record accepted sends at `per_second` for `seconds` (the measured rate follows)."""
    for _ in range(int(per_second * seconds)):
        clock.now += 1.0 / per_second
        rate.record(False, clock.now)


async def test_off_until_the_first_throttled_answer() -> None:
    clock = Clock()
    rate = SendRate(clock)
    sending_at(rate, clock, 20, 3)
    assert not rate.enabled
    assert await rate.acquire() == clock.now  # no wait, no limit
    rate.record(True, clock.now)
    assert rate.enabled
    assert rate.rate == pytest.approx(BETA * rate.measured)  # cut from the measured rate
    assert rate.measured == pytest.approx(20, rel=0.1)


async def test_cut_on_throttling_grown_on_success_never_below_the_floor() -> None:
    clock = Clock()
    rate = SendRate(clock)
    sending_at(rate, clock, 10, 3)
    rate.record(True, clock.now)
    after_cut = rate.rate
    clock.now += 0.1
    rate.record(False, clock.now)
    assert rate.rate == pytest.approx(min(after_cut + INCREASE, 2 * rate.measured))
    for _ in range(30):  # a throttled answer to every send: down to the floor, never to zero
        clock.now += 1 / MIN_RATE  # the fake clock does not move while acquire waits: a token first
        rate.record(True, await rate.acquire())
    assert rate.rate == MIN_RATE


async def test_growth_is_capped_at_twice_the_measured_rate() -> None:
    clock = Clock()
    rate = SendRate(clock)
    sending_at(rate, clock, 4, 3)
    rate.record(True, clock.now)
    for _ in range(50):  # successes, but sent slowly: the limit may not run far ahead of what is sent
        clock.now += 0.5
        rate.record(False, clock.now)
    assert rate.rate <= 2 * rate.measured + 1e-9


async def test_one_cut_per_window_of_sends() -> None:
    clock = Clock()
    rate = SendRate(clock)
    rate.window = 4  # the output's concurrency
    sending_at(rate, clock, 40, 3)
    rate.record(True, clock.now)
    first = rate.rate
    in_flight = clock.now - 0.01  # sent before the cut: its refusal was about the old rate
    rate.record(True, in_flight)
    assert (rate.rate, rate.cuts) == (first, 1)
    for _ in range(3):  # sent after the cut, but within its window
        rate.tokens = 1.0
        rate.record(True, await rate.acquire())
    assert rate.cuts == 1
    rate.tokens = 1.0
    rate.record(True, await rate.acquire())  # the window is full: this one counts
    assert rate.cuts == 2
    assert rate.throttled == 6


async def test_sends_are_paced_at_the_rate() -> None:
    rate = SendRate()  # real clock: acquire really waits
    rate.record(True, 0.0)  # nothing measured yet: the floor
    assert rate.rate == MIN_RATE
    rate.rate = 50.0
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(10):
        await rate.acquire()
    assert loop.time() - start == pytest.approx(10 / 50.0, abs=0.08)


async def test_the_limit_is_lifted_after_a_quiet_period() -> None:
    clock = Clock()
    rate = SendRate(clock)
    sending_at(rate, clock, 10, 2)
    rate.record(True, clock.now)
    clock.now += QUIET + 1
    assert await rate.acquire() == clock.now  # no wait
    assert not rate.enabled
