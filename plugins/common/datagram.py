"""Reading a bound datagram socket (UDP, unixgram) in bursts.

The socket is watched with the loop's reader callback; each time it is
readable up to `burst` datagrams are received without awaiting and handed to
`on_datagrams` in one list, so the input builds one batch per burst, not one
per datagram. A datagram longer than `max_bytes` is cut by the kernel (the
receive size is `max_bytes + 1`, so a cut is detected); the callback gets
`(data, sender)` pairs and decides what to do with the overlong ones.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import Any

from collector.log import RepeatLimiter, kv

DEFAULT_BURST = 256


class DatagramReader:
    def __init__(
        self,
        sock: socket.socket,
        on_datagrams: Callable[[list[tuple[bytes, Any]]], None],
        max_bytes: int,
        log: logging.Logger,
        component: str,
        burst: int = DEFAULT_BURST,
    ) -> None:
        self.sock = sock
        self.on_datagrams = on_datagrams
        self.recv_size = max_bytes + 1
        self.burst = burst
        self.log = log
        self.component = component
        self.errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limiter = RepeatLimiter()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._readable)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None

    def _readable(self) -> None:
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
            return
        try:
            self.on_datagrams(received)
        except Exception as exc:  # a bug in the parser must not kill the reader
            self._error(exc)

    def _error(self, exc: BaseException) -> None:
        self.errors += 1
        now, first, suppressed = self._limiter.check(type(exc).__name__)
        if now:
            self.log.warning(
                "error while receiving datagrams",
                exc_info=exc if first and not isinstance(exc, OSError) else None,
                extra=kv(component=self.component, error=f"{type(exc).__name__}: {exc}", repeats_suppressed=suppressed),
            )
