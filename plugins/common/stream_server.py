"""Accepting stream connections (TCP, unix, TLS) for the receiving inputs.

Design note. Each accepted connection is a `Connection` protocol object and
one task running the input's handler, `async handler(conn)`, which loops on
`await conn.read()` (everything received since the last read, in one `bytes`;
`b""` at the end of the stream), turns the bytes into records and awaits
`ctx.emit`. That await is the backpressure: while the handler waits for room
downstream it does not read, data piles up in the connection until
`high_water` bytes, and then the transport stops reading the socket, so the
kernel's window closes and the sender blocks. Other connections carry on.

A handler that raises closes its own connection only: the error is counted
(`closed_on_error`) and logged at most once a minute per cause. Connections
beyond `max_connections` are closed at once and counted (`refused`).

Stopping (`stop`) first stops accepting, then lets every handler finish what
it has already received (reading stops; `read()` returns what is buffered,
then `b""`), waiting up to a timeout before cancelling the stragglers; `close`
then closes the transports. The two steps are separate so that an input can
still write to its connections in between (the forward input's acks).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from collector.log import RepeatLimiter, kv

DEFAULT_HIGH_WATER = 1024 * 1024
SSL_HANDSHAKE_TIMEOUT = 10.0


def format_peer(peername: Any) -> str:
    """`("127.0.0.1", 5170)` -> `127.0.0.1:5170`; a unix peer (usually unnamed) -> `unix`."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host = str(peername[0])
        return f"[{host}]:{peername[1]}" if ":" in host else f"{host}:{peername[1]}"
    if isinstance(peername, str | bytes) and peername:
        return f"unix:{peername if isinstance(peername, str) else peername.decode(errors='replace')}"
    return "unix"


class Connection(asyncio.Protocol):
    """One accepted connection: buffers what arrives and hands it to the handler in chunks."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.task: asyncio.Task[None] | None = None
        self.lost = False
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._eof = False
        self._finishing = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- transport callbacks ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses
        self.peer = format_peer(transport.get_extra_info("peername"))
        self.server._accepted(self)

    def data_received(self, data: bytes) -> None:
        if self._finishing:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered >= self.server.high_water and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep our side open: the handler may still write (acks) before it closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the handler's side -------------------------------------------------------------------------

    async def read(self) -> bytes:
        """Everything received since the last call; `b""` once the stream has ended."""
        while not self._chunks:
            if self._eof:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunks, self._chunks = self._chunks, []
        self._buffered = 0
        if self._paused and not self._finishing and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    @property
    def writable(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def finish_reading(self) -> None:
        """Stop reading from the socket; `read()` returns what is buffered, then `b""`."""
        self._finishing = True
        self._eof = True
        if self.transport is not None and not self._paused and not self.transport.is_closing():
            self._paused = True
            try:
                self.transport.pause_reading()
            except (RuntimeError, AttributeError):  # closing already
                pass
        self._wake()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


Handler = Callable[[Connection], Awaitable[None]]


class StreamServer:
    """Serves connections on one or more bound stream sockets with one handler."""

    def __init__(
        self,
        handler: Handler,
        log: logging.Logger,
        component: str,
        max_connections: int,
        high_water: int = DEFAULT_HIGH_WATER,
    ) -> None:
        self.handler = handler
        self.log = log
        self.component = component
        self.max_connections = max_connections
        self.high_water = high_water
        self.connections: set[Connection] = set()
        self.accepted = 0
        self.refused = 0
        self.closed_on_error = 0
        self._servers: list[asyncio.AbstractServer] = []
        self._limiter = RepeatLimiter()
        self._accepting = False

    async def start(self, socks: list[socket.socket], ssl_context: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._accepting = True
        for sock in socks:
            server = await loop.create_server(
                lambda: Connection(self),
                sock=sock,
                ssl=ssl_context,
                ssl_handshake_timeout=SSL_HANDSHAKE_TIMEOUT if ssl_context is not None else None,
            )
            self._servers.append(server)

    def _accepted(self, conn: Connection) -> None:
        if not self._accepting or len(self.connections) >= self.max_connections:
            self.refused += 1
            self._log_limited(
                "refused",
                "connection refused: too many connections or stopping",
                peer=conn.peer,
                max_connections=self.max_connections,
            )
            conn.close()
            return
        self.accepted += 1
        self.connections.add(conn)
        conn.task = asyncio.get_running_loop().create_task(self._serve(conn))

    async def _serve(self, conn: Connection) -> None:
        try:
            await self.handler(conn)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.closed_on_error += 1
            self._log_limited(
                type(exc).__name__,
                "connection closed after an error; other connections are not affected",
                peer=conn.peer,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            conn.close()
            self.connections.discard(conn)

    def _log_limited(self, cause: str, message: str, **fields: Any) -> None:
        now, _, suppressed = self._limiter.check(cause)
        if not now:
            return
        if suppressed:
            fields["repeats_suppressed"] = suppressed
        self.log.warning(message, extra=kv(component=self.component, **fields))

    async def stop(self, timeout: float) -> int:
        """Stop accepting and let handlers finish what they received; returns how many were cancelled."""
        self._accepting = False
        for server in self._servers:
            server.close()
        for conn in list(self.connections):
            conn.finish_reading()
        tasks = [c.task for c in self.connections if c.task is not None and not c.task.done()]
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)

    def close(self) -> None:
        self._accepting = False
        for server in self._servers:
            server.close()
        self._servers.clear()
        for conn in list(self.connections):
            conn.close()
            if conn.task is not None and not conn.task.done():
                conn.task.cancel()
        self.connections.clear()
