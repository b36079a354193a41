"""Datagrams the kernel dropped before we could read them (a full socket receive buffer).

Linux counts them per socket in the last column (`drops`) of `/proc/net/udp`
and `/proc/net/udp6`; the socket is found by its inode. Elsewhere (or when
/proc is not readable) the count is unknown and `read()` returns None.
"""

from __future__ import annotations

import os
import socket

_TABLES = ("/proc/net/udp", "/proc/net/udp6")
_INODE_COLUMN = 9
_DROPS_COLUMN = 12


class KernelDrops:
    """Reads the kernel's drop counter of one UDP socket; `delta()` returns what is new since the last call."""

    def __init__(self, sock: socket.socket) -> None:
        self.inode = str(os.fstat(sock.fileno()).st_ino)
        self.tables = _TABLES if sock.family != socket.AF_INET6 else _TABLES[::-1]
        self._last = self.read() or 0

    def read(self) -> int | None:
        for table in self.tables:
            try:
                with open(table, encoding="ascii", errors="replace") as f:
                    next(f, None)  # header
                    for line in f:
                        fields = line.split()
                        if len(fields) > _DROPS_COLUMN and fields[_INODE_COLUMN] == self.inode:
                            return int(fields[_DROPS_COLUMN])
            except (OSError, ValueError):
                continue
        return None

    def delta(self) -> int:
        current = self.read()
        if current is None:
            return 0
        new, self._last = max(0, current - self._last), current
        return new
