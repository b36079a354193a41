"""What a test process has open: for tests that a server closes every socket it accepted."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable


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
