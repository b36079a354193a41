"""Reading a bound datagram socket (UDP, unixgram) in bursts, and counting what the kernel dropped.

The socket is watched with the loop's reader callback; each time it is
readable up to `burst` datagrams are received without awaiting and handed to
`on_datagrams` in one list, so the input builds one batch per burst, not one
per datagram. A datagram longer than `max_bytes` is cut by the kernel (the
receive size is `max_bytes + 1`, so a cut is detected); the callback gets
`(data, sender)` pairs and decides what to do with the overlong ones.

A UDP sender cannot be slowed down: while the loop is busy (or the input's
parsing is slower than the sender), the socket's receive buffer fills and the
kernel drops what does not fit. Those datagrams never reach us, so the reader
reads the socket's drop counter (`kernel_drops.py`) once a second, and once
more at stop, and counts what is new in the loss ledger as `kernel_drops`,
with an ERROR line at most once a minute. At stop the datagrams already in
the receive buffer are read and handed on (up to `DRAIN_LIMIT`) before the
socket is given up.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from collector.log import RepeatLimiter, kv
from collector_plugins.common.listening.kernel_drops import KERNEL_DROPS, KernelDrops

DEFAULT_BURST = 256
# Seconds between two readings of the kernel's drop counter (one getsockopt per socket).
DROPS_INTERVAL = 1.0
# At stop, at most this many datagrams still in the receive buffer are read (more than a 64MiB buffer holds).
DRAIN_LIMIT = 200_000

LossCallback = Callable[[str, int], None]


class DatagramReader:
    def __init__(
        self,
        sock: socket.socket,
        on_datagrams: Callable[[list[tuple[bytes, Any]]], None],
        max_bytes: int,
        log: logging.Logger,
        component: str,
        burst: int = DEFAULT_BURST,
        *,
        loss: LossCallback | None = None,
        drops: KernelDrops | None = None,
    ) -> None:
        """`loss(reason, count)` gets the kernel's drops; `drops` is the socket's counter, read from the
        moment it was made (make it right after binding), else from now."""
        self.sock = sock
        self.on_datagrams = on_datagrams
        self.recv_size = max_bytes + 1
        self.burst = burst
        self.log = log
        self.component = component
        self.loss = loss
        self.errors = 0
        self.drops = drops if drops is not None else KernelDrops(sock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._limiter = RepeatLimiter()
        self._drop_limiter = RepeatLimiter(interval=60.0)
        self._unlogged_drops = 0

    @property
    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped for this socket, counted so far."""
        return self.drops.total

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)
        if self.drops.method != "none":
            self._timer = self._loop.call_later(DROPS_INTERVAL, self._poll_drops)

    def stop(self) -> None:
        """Stop watching the socket: read what it still holds, then count the drops one last time."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        loop.remove_reader(self.sock.fileno())
        remaining = DRAIN_LIMIT
        while remaining > 0:
            received = self._readable()
            if not received:
                break
            remaining -= received
        self.count_drops()

    def _poll_drops(self) -> None:
        self.count_drops()
        if self._loop is not None:
            self._timer = self._loop.call_later(DROPS_INTERVAL, self._poll_drops)

    def count_drops(self) -> int:
        """Read the kernel's counter; count what is new in the loss ledger (and log it, at most once a minute)."""
        dropped = self.drops.delta()
        if not dropped:
            return 0
        if self.loss is not None:
            self.loss(KERNEL_DROPS, dropped)
        self._unlogged_drops += dropped
        now, _, _ = self._drop_limiter.check("kernel_drops")
        if now:
            unlogged, self._unlogged_drops = self._unlogged_drops, 0
            self.log.error(
                "datagrams were dropped by the kernel before they could be read (counted in the loss ledger)",
                extra=kv(
                    component=self.component,
                    reason=KERNEL_DROPS,
                    datagrams=unlogged,
                    receive_buffer=_receive_buffer(self.sock),
                    hint="raise net.core.rmem_max so the receive buffer absorbs bursts, or send less",
                ),
            )
        return dropped

    def _readable(self) -> int:
        received: list[tuple[bytes, Any]] = []
        recvfrom, size = self.sock.recvfrom, self.recv_size
        for _ in range(self.burst):
            try:
                received.append(recvfrom(size))
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. ICMP errors reported on the socket: not fatal
                self._error(exc)
                break
        if not received:
            return 0
        try:
            self.on_datagrams(received)
        except Exception as exc:  # a bug in the parser must not kill the reader
            self._error(exc)
        return len(received)

    def _error(self, exc: BaseException) -> None:
        self.errors += 1
        now, first, suppressed = self._limiter.check(type(exc).__name__)
        if now:
            self.log.warning(
                "error while receiving datagrams",
                exc_info=exc if first and not isinstance(exc, OSError) else None,
                extra=kv(component=self.component, error=f"{type(exc).__name__}: {exc}", repeats_suppressed=suppressed),
            )


def _receive_buffer(sock: socket.socket) -> int | None:
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    except OSError:
        return None
