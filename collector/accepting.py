"""Closing a listening socket without orphaning the connection being accepted at that moment.

asyncio (3.11) accepts a connection in one loop turn and makes its transport in a task on the next; the
transport registers with its server, and if the server was closed in between, making it fails and the
accepted socket stays open, unowned, until garbage collection (a leaked descriptor, and a connection the
client sees hang instead of close). So servers stop watching their listening sockets first, give the loop one
turn to make the transports already accepted, and only then close: those connections are then served or
refused like any other. uvloop accepts inside libuv and has nothing registered with the loop to remove.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Protocol


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
