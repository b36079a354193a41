"""Closing a listening socket without orphaning the connection being accepted at that moment.

asyncio (3.11) accepts a connection in one loop turn and makes its transport in a task on the next; the
transport registers with its server, and if the server was closed in between, making it fails and the
accepted socket stays open, unowned, until garbage collection (a leaked descriptor, and a connection the
client sees hang instead of close). So servers stop watching their listening sockets first, give the loop one
turn to make the transports already accepted, and only then close: those connections are then served or
refused like any other. uvloop accepts inside libuv and has nothing registered with the loop to remove.

The aiohttp servers (health API, prometheus_exporter, OTLP/HTTP, sampling proxy) stop through `stop_site` and
give requests in hand `HTTP_SHUTDOWN_TIMEOUT`, not aiohttp's default 60 s, which outlasts most shutdown grace
periods (on uvloop a client connecting just as the collector stopped held it that long).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any, Protocol

# Seconds an aiohttp server's requests in hand get to finish when it stops (its runner's shutdown_timeout).
HTTP_SHUTDOWN_TIMEOUT = 1.0


class _Listening(Protocol):
    """A listening socket: `socket.socket`, or the wrapper asyncio servers expose."""

    def fileno(self) -> int: ...


async def stop_accepting(socks: Iterable[_Listening]) -> None:
    """Stop accepting on `socks` (still open) and let connections accepted already get their transports."""
    loop = asyncio.get_running_loop()
    for sock in socks:
        with contextlib.suppress(NotImplementedError, ValueError, OSError):
            loop.remove_reader(sock.fileno())
    await asyncio.sleep(0)  # the tasks making those transports were scheduled in the turn that accepted them
    await asyncio.sleep(0)  # making a transport schedules its protocol's connection_made for the next turn


async def stop_site(runner: Any, socks: Iterable[_Listening]) -> None:
    """Stop an aiohttp `AppRunner` serving on `socks`: stop accepting first, then its own cleanup."""
    await stop_accepting(socks)
    await runner.cleanup()
