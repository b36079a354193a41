"""What a test process has open: for tests that a server closes every socket it accepted."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any


def open_sockets(only: Iterable[socket.socket] | None = None) -> set[str]:
    """This process's open socket descriptors, as `fd->socket:[inode]` (only those of `only` when given)."""
    fds = [str(s.fileno()) for s in only] if only is not None else os.listdir("/proc/self/fd")
    found = set()
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # closed while listing
        if target.startswith("socket:"):
            found.add(f"{fd}->{target}")
    return found


async def left_open_by_stop(port: int, stop: Callable[[], Awaitable[Any]], turns: int) -> set[str]:
    """Connect three clients to `port`, let the loop run `turns` turns (so the server is caught at each point of
    accepting them in turn), await `stop()`; returns the sockets the server left open (its own, not the clients')."""
    before = open_sockets()
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        for _ in range(turns):
            await asyncio.sleep(0)  # not a wait: one loop turn
        await stop()
        return open_sockets() - before - open_sockets(clients)
    finally:
        for client in clients:
            client.close()
