from __future__ import annotations

import asyncio

import pytest

from collector.channel import Channel, ChannelClosed
from collector.events import LOGS, Batch


def batch(n: int) -> Batch:
    return Batch(LOGS, [{"message": "x"}] * n)


async def test_bounded_by_events_but_always_admits_one_batch() -> None:
    ch = Channel("c", max_events=10)
    assert ch.try_send(batch(25))  # empty: admitted however large
    assert not ch.try_send(batch(1))
    assert (await ch.receive()).records.__len__() == 25
    assert ch.try_send(batch(6))
    assert not ch.try_send(batch(5))
    assert ch.events == 6


async def test_send_waits_until_room_then_delivers_in_order() -> None:
    ch = Channel("c", max_events=2)
    await ch.send(batch(2))
    blocked = asyncio.create_task(ch.send(Batch(LOGS, [{"message": "second"}])))
    await asyncio.sleep(0)
    assert not blocked.done()
    first = await ch.receive()
    await asyncio.wait_for(blocked, 1)
    second = await ch.receive()
    assert len(first) == 2 and second.records == [{"message": "second"}]


async def test_close_drains_then_ends() -> None:
    ch = Channel("c")
    ch.try_send(batch(1))
    ch.close()
    assert await ch.receive() is not None
    assert await ch.receive() is None
    with pytest.raises(ChannelClosed):
        ch.try_send(batch(1))


async def test_interrupt_wakes_a_waiting_consumer_without_losing_data() -> None:
    ch = Channel("c")
    waiting = asyncio.create_task(ch.receive())
    await asyncio.sleep(0)
    ch.interrupt()
    assert await asyncio.wait_for(waiting, 1) is None
    ch.try_send(batch(3))
    assert len(await ch.receive()) == 3
