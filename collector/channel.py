"""A bounded channel of batches between components.

Design note. One consumer, any number of producers (fan-in). Sending is
synchronous while there is room (`try_send`), so the common case costs no
`await`; a producer waits only when the channel is full, which is how
backpressure reaches an input. The bound is in events, not batches, so a few
huge batches cannot hide behind a batch count; an empty channel always admits
one batch, however large, so no batch can be stuck forever.

The channel belongs to its consumer's *name*, not to a component instance: a
component replaced on reload (or restarted after a crash) resumes from the same
channel, with what was queued for it still there.
"""

from __future__ import annotations

import asyncio
from collections import deque

from collector.events import Batch

# A few batches of a typical size: enough to keep a consumer busy while its producer
# works, small enough that two hops of queued 200-byte records stay in tens of MiB.
DEFAULT_CHANNEL_EVENTS = 16_384


class ChannelClosed(Exception):
    """Raised to a producer that sends into a channel whose consumer was removed."""


class Channel:
    def __init__(self, name: str, max_events: int = DEFAULT_CHANNEL_EVENTS) -> None:
        self.name = name
        self.max_events = max_events
        self.events = 0
        self._items: deque[Batch] = deque()
        self._closed = False
        self._getter: asyncio.Future[None] | None = None
        self._putters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def try_send(self, batch: Batch) -> bool:
        """Queue `batch` if there is room; never waits."""
        if self._closed:
            raise ChannelClosed(self.name)
        n = len(batch.records)
        if self._items and self.events + n > self.max_events:
            return False
        self._items.append(batch)
        self.events += n
        getter = self._getter
        if getter is not None and not getter.done():
            getter.set_result(None)
        return True

    async def send(self, batch: Batch) -> None:
        """Queue `batch`, waiting while the channel is full."""
        while not self.try_send(batch):
            fut = asyncio.get_running_loop().create_future()
            self._putters.append(fut)
            try:
                await fut
            finally:
                if fut in self._putters:
                    self._putters.remove(fut)

    async def receive(self) -> Batch | None:
        """The next batch; None once closed and drained, or when `interrupt()` is called."""
        while not self._items:
            if self._closed:
                return None
            fut = asyncio.get_running_loop().create_future()
            self._getter = fut
            try:
                await fut
            finally:
                self._getter = None
            if not self._items:
                return None  # interrupted, or closed while empty
        batch = self._items.popleft()
        self.events -= len(batch.records)
        self._wake_putters()
        return batch

    def interrupt(self) -> None:
        """Make a waiting `receive()` return None (the consumer is being stopped)."""
        if self._getter is not None and not self._getter.done():
            self._getter.set_result(None)

    def close(self) -> None:
        """No more sends; the consumer drains what is queued, then `receive()` returns None."""
        self._closed = True
        self.interrupt()
        self._wake_putters()

    def _wake_putters(self) -> None:
        # Wake every waiting producer: each retries and at most the room left is used.
        while self._putters:
            fut = self._putters.popleft()
            if not fut.done():
                fut.set_result(None)
