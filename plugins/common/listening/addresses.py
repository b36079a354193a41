"""Listening addresses of the receiving inputs: parsing, validation and binding.

An address is written `SCHEME://WHERE`:

- `tcp://127.0.0.1:5170`, `udp://127.0.0.1:5514` (`[::1]:5170` for IPv6);
  a bare `127.0.0.1:5170` takes the input's default scheme;
- `unix:///run/collector/app.sock` (a stream socket),
  `unixgram:///run/collector/log.sock` (a datagram socket).

Sockets are bound in the input's `start()`, so a port in use or a directory
that does not exist fails the start with a clear error, and connections that
arrive before the input runs wait in the kernel's backlog. A unix socket's
directory is created if missing; a socket file left behind by a previous run
is replaced, but only if it is a socket: a regular file there is an error,
never deleted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from dataclasses import dataclass
from typing import Literal

from collector.config.model import parse_listen

Scheme = Literal["tcp", "udp", "unix", "unixgram"]
SCHEMES: tuple[Scheme, ...] = ("tcp", "udp", "unix", "unixgram")
STREAM_SCHEMES = frozenset({"tcp", "unix"})
# Receive buffer asked for datagram sockets: bursts of UDP are the usual way to lose data.
DATAGRAM_RCVBUF = 4 * 1024 * 1024
# Connections the kernel completes before the input accepts them (bursts: many clients reconnecting after a
# restart). Servers must pass it on: asyncio's create_server and aiohttp's SockSite call listen() again with
# their own defaults (100, 128).
LISTEN_BACKLOG = 1024


@dataclass(frozen=True)
class Address:
    scheme: Scheme
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def stream(self) -> bool:
        return self.scheme in STREAM_SCHEMES

    @property
    def is_unix(self) -> bool:
        return self.scheme in ("unix", "unixgram")

    def __str__(self) -> str:
        if self.is_unix:
            return f"{self.scheme}://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_address(text: str, default: Scheme, allowed: tuple[Scheme, ...] = SCHEMES) -> Address:
    """`tcp://127.0.0.1:5170` -> Address; raises ValueError with a hint for anything else."""
    value = text.strip()
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = default, value
    if scheme not in allowed:
        raise ValueError(f"unsupported scheme {scheme!r} in {text!r}: use one of {', '.join(allowed)}")
    if scheme in ("unix", "unixgram"):
        if not rest.startswith("/"):
            raise ValueError(f"{text!r}: a unix socket needs an absolute path, e.g. {scheme}:///run/collector.sock")
        if len(rest.encode()) > 107:
            raise ValueError(f"{text!r}: a unix socket path is limited to 107 bytes")
        return Address(scheme, path=rest)  # type: ignore[arg-type]
    host, port = parse_listen(rest)
    return Address(scheme, host=host, port=port)  # type: ignore[arg-type]


def bind(address: Address, socket_mode: int | None = None) -> socket.socket:
    """A non-blocking socket bound to `address` (listening, for stream schemes)."""
    kind = socket.SOCK_STREAM if address.stream else socket.SOCK_DGRAM
    if address.is_unix:
        os.makedirs(os.path.dirname(address.path), exist_ok=True)  # /run/collector may not exist yet
        _remove_stale_socket(address.path)
        sock = socket.socket(socket.AF_UNIX, kind)
        try:
            sock.bind(address.path)
            if socket_mode is not None:
                os.chmod(address.path, socket_mode)
        except OSError:
            sock.close()
            raise
    else:
        family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
        sock = socket.socket(family, kind)
        try:
            if address.stream:
                # Lets a restarted collector bind while old connections sit in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address.host, address.port))
        except OSError:
            sock.close()
            raise
    if not address.stream:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, DATAGRAM_RCVBUF)
    else:
        sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


def release(address: Address, sock: socket.socket | None) -> None:
    """Close `sock` and remove the socket file of a unix address."""
    if sock is not None:
        sock.close()
    if address.is_unix:
        _remove_stale_socket(address.path)


def _remove_stale_socket(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket; not replacing it")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def parse_mode(value: str | None) -> int | None:
    """`"0660"` -> 0o660 (config validators call this)."""
    if value is None:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise ValueError(f"socket_mode {value!r} is not an octal mode like '0660'") from None
    if not 0 <= mode <= 0o777:
        raise ValueError(f"socket_mode {value!r} is out of range (0000-0777)")
    return mode
