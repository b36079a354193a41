from __future__ import annotations

import asyncio

from collector.acks import AckTracker
from collector.buffer.memory import MemoryBuffer
from collector.events import LOGS, Batch
from collector.testing import wait_for


def batch(n: int, ack=None) -> Batch:
    return Batch(LOGS, [{"message": "x" * 10, "i": i} for i in range(n)], nbytes=10 * n, ack=ack)


class Drops:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, reason: str, n: int) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n


async def test_bounded_and_blocking_until_acked() -> None:
    drops = Drops()
    buf = MemoryBuffer(max_events=10, max_bytes=10_000, when_full="block", on_drop=drops)
    assert await buf.push(batch(6))
    pusher = asyncio.create_task(buf.push(batch(6)))
    await wait_for(lambda: not buf._space.is_set())  # the push waits for room
    assert not pusher.done()  # 12 > 10 events
    unit = await buf.pop()
    await asyncio.sleep(0)  # were a pop to make room, the push would complete in this step
    assert not pusher.done()  # popped is not acknowledged: still counted
    buf.ack(unit)
    assert await asyncio.wait_for(pusher, 1)
    assert buf.pending_events == 6 and drops.counts == {}


async def test_drop_newest_counts_and_releases_the_ack() -> None:
    drops = Drops()
    committed: list[int] = []
    tracker = AckTracker(committed.append)
    buf = MemoryBuffer(max_events=10, max_bytes=50, when_full="drop_newest", on_drop=drops)
    assert await buf.push(batch(5))  # 50 bytes: full by bytes now
    token = tracker.token(1)
    assert not await buf.push(batch(2, ack=token))
    assert drops.counts == {"buffer_full": 2}
    assert committed == [1]  # dropped data is accounted for, so the input may move on


async def test_ack_releases_input_token_and_rewind_replays_in_order() -> None:
    committed: list[int] = []
    tracker = AckTracker(committed.append)
    buf = MemoryBuffer(max_events=100, max_bytes=10_000, when_full="block", on_drop=Drops())
    for i in range(3):
        await buf.push(batch(1, ack=tracker.token(i)))
    u0, u1 = await buf.pop(), await buf.pop()
    buf.ack(u1)
    assert committed == []
    buf.rewind()
    again = [await buf.pop(), await buf.pop()]
    assert [u.id for u in again] == [u0.id, 2]
    buf.ack(again[0])
    assert committed == [1]


async def test_close_counts_what_was_never_delivered() -> None:
    drops = Drops()
    buf = MemoryBuffer(max_events=100, max_bytes=10_000, when_full="block", on_drop=drops)
    await buf.push(batch(3))
    await buf.push(batch(4))
    await buf.pop()
    buf.close_intake()
    await buf.close()
    assert drops.counts == {"shutdown_timeout": 7}
    assert buf.metrics()["events"] == 0


async def test_pop_returns_none_once_closed_and_drained() -> None:
    buf = MemoryBuffer(max_events=100, max_bytes=10_000, when_full="block", on_drop=Drops())
    await buf.push(batch(1))
    buf.close_intake()
    assert (await buf.pop()) is not None
    assert (await buf.pop()) is None
