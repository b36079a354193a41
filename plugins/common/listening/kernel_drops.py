"""Datagrams the kernel dropped for one socket before we could read them.

Linux counts, per socket, every datagram it discards on the way in (a full
receive buffer, memory pressure, a bad checksum): `sk_drops`. Two ways to
read it without touching the receive path (no per-datagram work, so it works
the same behind our own reader and behind an asyncio/uvloop datagram
transport):

- `getsockopt(SOL_SOCKET, SO_MEMINFO)` (Linux >= 4.6): an array of u32 whose
  `SK_MEMINFO_DROPS` entry is the counter. One syscall on the socket itself,
  whatever the family: UDP over IPv4 and IPv6, and unixgram.
- the `drops` column of `/proc/net/udp` and `/proc/net/udp6` (the line whose
  inode is the socket's): the fallback where SO_MEMINFO is refused. It costs a
  scan of every UDP socket of the network namespace, so it is read at most
  once per poll. An AF_INET6 socket (dual-stack or not) is listed in `udp6`
  only, an AF_INET one in `udp` only; unixgram sockets have no such column.

(SO_RXQ_OVFL would deliver the same counter as ancillary data with each
`recvmsg`, which the asyncio/uvloop datagram transports do not expose, and
would add work per datagram.)

The counter is a 32-bit unsigned value that wraps (the kernel keeps an `int`
and reports it unsigned): the difference between two readings is taken modulo
2**32, exact as long as fewer than 4 billion datagrams are dropped between two
readings. It starts at 0 when the socket is created, so the first reading,
taken right after binding, is the baseline.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from collections.abc import Callable

KERNEL_DROPS = "kernel_drops"
"""The loss ledger reason."""

# linux/socket.h and linux/sock_diag.h; Python's socket module has no name for them.
SO_MEMINFO = getattr(socket, "SO_MEMINFO", 55)
SK_MEMINFO_DROPS = 8
_MEMINFO_BYTES = 4 * (SK_MEMINFO_DROPS + 1)
_COUNTER_RANGE = 1 << 32

_UDP_TABLES = ("/proc/net/udp", "/proc/net/udp6")
_INODE_COLUMN = 9
_DROPS_COLUMN = 12


def counter_delta(last: int, current: int) -> int:
    """Drops between two readings of the wrapping 32-bit counter."""
    return (current - last) % _COUNTER_RANGE


def _read_meminfo(sock: socket.socket) -> int:
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, _MEMINFO_BYTES)
    if len(raw) < _MEMINFO_BYTES:
        raise OSError("SO_MEMINFO returned no drop counter")
    return int(struct.unpack_from("=I", raw, 4 * SK_MEMINFO_DROPS)[0])


def _proc_reader(sock: socket.socket, proc_net: str) -> Callable[[], int] | None:
    if sock.family == socket.AF_INET:
        table = os.path.join(proc_net, "udp")
    elif sock.family == socket.AF_INET6:
        table = os.path.join(proc_net, "udp6")
    else:
        return None
    inode = str(os.fstat(sock.fileno()).st_ino)

    def read() -> int:
        with open(table, encoding="ascii", errors="replace") as f:
            next(f, None)  # the header
            for line in f:
                fields = line.split()
                if len(fields) > _DROPS_COLUMN and fields[_INODE_COLUMN] == inode:
                    return int(fields[_DROPS_COLUMN]) % _COUNTER_RANGE
        raise OSError(f"socket inode {inode} is not in {table}")

    return read


class KernelDrops:
    """The drop counter of one socket; `delta()` returns the drops since the previous call.

    `method` says how it is read (`so_meminfo`, `proc`) or that it cannot be
    (`none`: not Linux, or /proc not mounted); then `delta()` is always 0.
    """

    def __init__(self, sock: socket.socket, *, proc_net: str = "/proc/net", use_meminfo: bool = True) -> None:
        self.sock = sock
        self.method = "none"
        self._read: Callable[[], int] | None = None
        self.total = 0
        """Drops counted so far (since this object was made)."""
        if use_meminfo:
            with contextlib.suppress(OSError):
                _read_meminfo(sock)
                self.method, self._read = "so_meminfo", lambda: _read_meminfo(sock)
        if self._read is None:
            reader = _proc_reader(sock, proc_net)
            if reader is not None:
                with contextlib.suppress(OSError, ValueError):
                    reader()
                    self.method, self._read = "proc", reader
        self._last = self.read() or 0

    def read(self) -> int | None:
        """The kernel's counter now, or None when it cannot be read (the socket was closed, say)."""
        if self._read is None:
            return None
        try:
            return self._read()
        except (OSError, ValueError):
            return None

    def delta(self) -> int:
        current = self.read()
        if current is None:
            return 0
        new, self._last = counter_delta(self._last, current), current
        self.total += new
        return new
