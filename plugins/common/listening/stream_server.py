"""Accepting stream connections (TCP, unix, TLS) for the receiving inputs, within one memory bound.

Design note. Each accepted connection is a `Connection` protocol object and
one task running the input's handler, `async handler(conn)`, which loops on
`await conn.read()` (at most `MAX_READ` bytes received since the last read;
`b""` at the end of the stream), turns the bytes into records and awaits
`ctx.emit`. While the handler waits for room downstream it does not read.

Memory. Everything the connections of one input hold is counted against one
budget, `max_in_flight_bytes` (`StreamServer`'s `received_*` and `held_*`),
in two parts (a quarter and three quarters of it):

- *received*: bytes read from sockets and not yet taken by a handler, plus the
  partial frame a handler keeps between reads (`read(retained=...)`). When
  this part reaches its share, reading stops on every socket of the input
  (`transport.pause_reading`, so the kernel's window closes and senders
  block) until it has fallen to half of it. One connection also stops reading
  on its own when it holds `high_water` unread bytes.
- *held*: what handlers took and have not handed on yet, counted as decoded
  (`conn.hold(estimate)`: records are several times their wire size). A
  handler's next `read()` releases it. `read()` waits while this part is at
  its share, so a full downstream makes connections queue for their turn
  instead of each decoding a chunk and waiting with it.

Reading stopped for the budget could leave every connection waiting for the
rest of a frame it can no longer receive; so while it is stopped, one
connection that waits for the rest of a frame may go on reading (the bound is
then passed by at most one frame). Nothing is ever dropped here: the bound is
kept by not reading.

Connections. A handler that raises closes its own connection only: the error
is counted (`closed_on_error`) and logged at most once a minute per cause. A
connection that sent nothing for `idle_timeout` seconds while its handler
waited for data is closed (`closed_idle`); one waiting for acks (`busy`) is
not idle. TCP keepalive finds peers that vanished (half-open connections)
within about two minutes. With `max_connections` served, a new connection
takes the place of the one idle the longest (at least `EVICT_MIN_IDLE`
seconds; `evicted`), so idle sockets cannot lock real clients out; if none is
idle it is closed at once (`refused`).

Stopping (`stop`) first stops accepting, then lets every handler finish what
it has already received (reading stops; `read()` returns what is buffered,
then `b""`), waiting up to a timeout before cancelling the stragglers; `close`
then closes the transports. The two steps are separate so that an input can
still write to its connections in between (the forward input's acks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import weakref
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from collector.accepting import stop_accepting
from collector.log import RepeatLimiter, kv
from collector_plugins.common.listening.addresses import LISTEN_BACKLOG

# One connection's unread bytes before its own socket is paused.
DEFAULT_HIGH_WATER = 1024 * 1024
# Most bytes one `read()` hands to a handler: bounds what one decode step makes.
MAX_READ = 1024 * 1024
DEFAULT_IN_FLIGHT_BYTES = 32 * 1024 * 1024
# Long, because a client that writes into a connection closed while it was idle usually loses that write
# (the close shows only as a reset after it). Dead peers are found sooner by TCP keepalive (KEEPALIVE_*).
DEFAULT_IDLE_TIMEOUT = 3600.0
# Probes on an idle TCP connection: a peer that vanished (half-open) is closed after about two minutes.
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_PROBES = 60, 10, 6
# What a decoded record costs beyond its wire bytes (a dict of a few fields and their strings; measured with
# tracemalloc for syslog and forward records: 490-690 bytes each).
RECORD_OVERHEAD = 640
# A connection idle this long may be closed to make room for a new one when the input is at max_connections.
EVICT_MIN_IDLE = 1.0
SSL_HANDSHAKE_TIMEOUT = 10.0
# How long stop() waits, at most, for connections the loop accepted just before the listener closed (their
# transports are still being made, then they are refused and closed: a few loop turns; a TLS handshake longer).
STOP_ACCEPTING_GRACE = 1.0


def format_peer(peername: Any) -> str:
    """`("127.0.0.1", 5170)` -> `127.0.0.1:5170`; a unix peer (usually unnamed) -> `unix`."""
    if isinstance(peername, tuple) and len(peername) >= 2:
        host = str(peername[0])
        return f"[{host}]:{peername[1]}" if ":" in host else f"{host}:{peername[1]}"
    if isinstance(peername, str | bytes) and peername:
        return f"unix:{peername if isinstance(peername, str) else peername.decode(errors='replace')}"
    return "unix"


def decoded_size(records: int, wire_bytes: int) -> int:
    """What `records` decoded from `wire_bytes` cost in memory, roughly (for `Connection.hold`)."""
    return wire_bytes + records * RECORD_OVERHEAD


class Connection(asyncio.Protocol):
    """One accepted connection: buffers what arrives and hands it to the handler in chunks."""

    def __init__(self, server: StreamServer) -> None:
        self.server = server
        server._unclosed.add(self)  # made by the server's protocol factory the moment the loop accepts
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.task: asyncio.Task[None] | None = None
        self.lost = False
        self.busy: Callable[[], bool] | None = None
        """Set by a handler: True while the connection must not be closed as idle (acks still to send)."""
        self.last_active = 0.0
        self._chunks: deque[bytes] = deque()
        self._buffered = 0  # received, not yet read by the handler
        self._retained = 0  # a partial frame the handler keeps between reads
        self._held = 0  # taken by the handler and not handed on yet (decoded size once it says so)
        self._eof = False
        self._finishing = False
        self._paused = False  # the transport's reading is paused
        self._waiting = False  # the handler waits in read() for data
        self._gone = False  # no longer counted by the server
        self._waiter: asyncio.Future[None] | None = None

    # -- transport callbacks ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses
        self.peer = format_peer(transport.get_extra_info("peername"))
        self.server._accepted(self)

    def data_received(self, data: bytes) -> None:
        if self._paused and self.transport is not None:
            # Paused, yet reading: uvloop starts reading after `connection_made`, whatever it was told there.
            with contextlib.suppress(RuntimeError, AttributeError):
                self.transport.pause_reading()
        if self._finishing or self._gone:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self.server._received(self, len(data))
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # keep our side open: the handler may still write (acks) before it closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._unclosed.discard(self)
        self.lost = True
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the handler's side -------------------------------------------------------------------------

    async def read(self, retained: int = 0) -> bytes:
        """At most `MAX_READ` bytes received since the last call; `b""` once the stream has ended.

        What the handler took with the previous call counts as handed on from now. `retained` is the size of
        the partial frame the handler keeps for the next chunk (it stays counted against the budget)."""
        server = self.server
        server._set_held(self, 0)
        server._set_retained(self, retained)
        while not self._chunks:
            if self._eof:
                return b""
            self._waiting = True
            server._waits(self)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
                self._waiting = False
        await server._admit(self)
        chunks = self._chunks
        if len(chunks) == 1 and len(chunks[0]) <= MAX_READ:
            data = chunks.popleft()
        else:
            parts: list[bytes] = []
            size = 0
            while chunks and size < MAX_READ:
                chunk = chunks[0]
                room = MAX_READ - size
                if len(chunk) > room:
                    parts.append(chunk[:room])
                    chunks[0] = chunk[room:]
                    size += room
                    break
                parts.append(chunks.popleft())
                size += len(chunk)
            data = b"".join(parts)
        self._buffered -= len(data)
        server._taken(self, len(data))
        return data

    def hold(self, nbytes: int) -> None:
        """What the handler now holds from its last read (its decoded records), until its next `read()`."""
        self.server._set_held(self, nbytes)

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
        self.server._sync(self)
        self._wake()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _set_reading(self, on: bool) -> None:
        transport = self.transport
        if on == (not self._paused) or transport is None or transport.is_closing():
            return
        self._paused = not on
        with contextlib.suppress(RuntimeError, AttributeError):  # closing already
            if on:
                transport.resume_reading()
            else:
                transport.pause_reading()


Handler = Callable[[Connection], Awaitable[None]]


def _keepalive(transport: Any) -> None:
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError, AttributeError):  # options Linux has; elsewhere the system's defaults
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE_IDLE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE_INTERVAL)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)


class StreamServer:
    """Serves connections on one or more bound stream sockets with one handler, within one memory budget."""

    def __init__(
        self,
        handler: Handler,
        log: logging.Logger,
        component: str,
        max_connections: int,
        high_water: int = DEFAULT_HIGH_WATER,
        max_in_flight_bytes: int = DEFAULT_IN_FLIGHT_BYTES,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.handler = handler
        self.log = log
        self.component = component
        self.max_connections = max_connections
        self.high_water = high_water
        self.idle_timeout = idle_timeout
        # A quarter for bytes not yet decoded, the rest for decoded records (several times their wire size).
        self.received_limit = max(max_in_flight_bytes // 4, 1)
        self.held_limit = max(max_in_flight_bytes - self.received_limit, 1)
        self.connections: OrderedDict[Connection, None] = OrderedDict()
        """Served connections, the one active longest ago first."""
        self.accepted = 0
        self.refused = 0
        self.evicted = 0
        self.closed_idle = 0
        self.closed_on_error = 0
        self.paused_for_memory = 0
        """How many times reading stopped on every socket because the input's memory budget was reached."""
        self.received_bytes = 0
        """Received and not yet taken by handlers, plus partial frames handlers keep."""
        self.held_bytes = 0
        """Taken by handlers and not yet handed on (decoded size)."""
        self.peak_in_flight = 0
        self._full = False  # reading stopped on every socket for the budget
        self._frame_reader: Connection | None = None  # the one that may read while _full, to finish its frame
        self._gate: deque[asyncio.Future[None]] = deque()
        self._servers: list[asyncio.AbstractServer] = []
        self._listening: list[socket.socket] = []
        self._limiter = RepeatLimiter()
        self._accepting = False
        self._reaper: asyncio.Task[None] | None = None
        self._unclosed: weakref.WeakSet[Connection] = weakref.WeakSet()
        """Connections accepted by the loop whose socket is not closed yet, including those not handed to us yet
        (weak: one whose TLS handshake failed never reaches connection_made or connection_lost)."""

    async def start(self, socks: list[socket.socket], ssl_context: ssl.SSLContext | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._accepting = True
        self._listening = list(socks)
        for sock in socks:
            server = await loop.create_server(
                lambda: Connection(self),
                sock=sock,
                backlog=LISTEN_BACKLOG,  # else asyncio's listen(100) replaces the socket's own
                ssl=ssl_context,
                ssl_handshake_timeout=SSL_HANDSHAKE_TIMEOUT if ssl_context is not None else None,
            )
            self._servers.append(server)
        if self.idle_timeout is not None:
            self._reaper = loop.create_task(self._reap_idle(self.idle_timeout))

    @property
    def in_flight_bytes(self) -> int:
        return self.received_bytes + self.held_bytes

    # -- accepting ----------------------------------------------------------------------------------

    def _accepted(self, conn: Connection) -> None:
        if self._accepting and len(self.connections) >= self.max_connections:
            victim = self._idlest()
            if victim is not None:
                self.evicted += 1
                self._log_limited(
                    "evicted",
                    "connection closed to make room: max_connections reached and it was the one idle longest",
                    peer=victim.peer,
                    max_connections=self.max_connections,
                )
                self._forget(victim)
                victim.close()
        if not self._accepting or len(self.connections) >= self.max_connections:
            self.refused += 1
            self._log_limited(
                "refused",
                "connection refused: too many busy connections or stopping",
                peer=conn.peer,
                max_connections=self.max_connections,
            )
            conn._gone = True
            conn.close()
            return
        self.accepted += 1
        _keepalive(conn.transport)
        loop = asyncio.get_running_loop()
        conn.last_active = loop.time()
        self.connections[conn] = None
        if self._full:
            conn._set_reading(False)  # a reading transport that delivers data anyway is paused again then
        conn.task = loop.create_task(self._serve(conn))

    def _is_idle(self, conn: Connection) -> bool:
        """Waiting for data that does not come: not paused by us (its data could be in the kernel), not busy."""
        return conn._waiting and not conn._paused and not (conn.busy is not None and conn.busy())

    def _idlest(self) -> Connection | None:
        horizon = asyncio.get_running_loop().time() - EVICT_MIN_IDLE
        for conn in self.connections:
            if conn.last_active > horizon:
                return None  # the rest were active later still
            if self._is_idle(conn):
                return conn
        return None

    async def _reap_idle(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(max(timeout / 4, 0.05), 5.0))
            horizon = loop.time() - timeout
            idle = []
            for conn in self.connections:
                if conn.last_active > horizon:
                    break
                if self._is_idle(conn):
                    idle.append(conn)
            for conn in idle:
                self.closed_idle += 1
                conn.close()  # its handler sees the end of the stream and ends
            if idle:
                self._log_limited(
                    "idle", "idle connections closed", connections=len(idle), idle_timeout=self.idle_timeout
                )

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
            self._forget(conn)

    def _forget(self, conn: Connection) -> None:
        """`conn` is no longer served: what it held no longer counts."""
        if conn._gone:
            return
        conn._gone = True
        self.connections.pop(conn, None)
        self.received_bytes -= conn._buffered + conn._retained
        self.held_bytes -= conn._held
        conn._buffered = conn._retained = conn._held = 0
        conn._chunks.clear()
        if self._frame_reader is conn:
            self._frame_reader = None
            self._pick_frame_reader()
        self._after_release()

    # -- the memory budget --------------------------------------------------------------------------

    def _received(self, conn: Connection, n: int) -> None:
        conn.last_active = asyncio.get_running_loop().time()
        self.connections.move_to_end(conn)
        self.received_bytes += n
        self._note_peak()
        if self.received_bytes >= self.received_limit and not self._full:
            self._full = True
            self.paused_for_memory += 1
            for other in self.connections:
                other._set_reading(False)
            self._pick_frame_reader()
        else:
            self._sync(conn)

    def _taken(self, conn: Connection, n: int) -> None:
        self.received_bytes -= n
        conn._held += n
        self.held_bytes += n
        self._after_release()
        self._sync(conn)
        self._open_gate()

    def _set_held(self, conn: Connection, n: int) -> None:
        if conn._gone:
            return
        self.held_bytes += n - conn._held
        conn._held = n
        self._note_peak()
        if self.held_bytes < self.held_limit:
            self._open_gate()

    def _set_retained(self, conn: Connection, n: int) -> None:
        if conn._gone:
            return
        self.received_bytes += n - conn._retained
        conn._retained = n
        if not n and self._frame_reader is conn:
            self._frame_reader = None
            self._sync(conn)
            self._pick_frame_reader()
        self._after_release()

    def _waits(self, conn: Connection) -> None:
        """`conn`'s handler waits for data; if it keeps a partial frame while reading is stopped, let it finish."""
        if self._full and conn._retained and self._frame_reader is None:
            self._frame_reader = conn
            self._sync(conn)

    def _after_release(self) -> None:
        if self._full and self.received_bytes <= self.received_limit // 2:
            self._full = False
            self._frame_reader = None
            for conn in self.connections:
                self._sync(conn)

    def _pick_frame_reader(self) -> None:
        # Reading stopped: a connection may be waiting for the rest of its frame, which it cannot receive.
        if self._full and self._frame_reader is None:
            for conn in self.connections:
                if conn._waiting and conn._retained:
                    self._waits(conn)
                    return

    def _sync(self, conn: Connection) -> None:
        """Read `conn`'s socket unless it is stopping, over its own high water, or the budget is reached."""
        if conn._finishing or conn.lost or conn._gone:
            conn._set_reading(False)
            return
        if conn._buffered >= self.high_water:
            conn._set_reading(False)
        elif self._full:
            conn._set_reading(conn is self._frame_reader)
        elif conn._paused and conn._buffered <= self.high_water // 2:
            conn._set_reading(True)

    async def _admit(self, conn: Connection) -> None:
        """Wait for room among what handlers hold (first come, first served); a stopping input does not wait."""
        while self.held_bytes >= self.held_limit and not conn._finishing and not conn._gone:
            fut = asyncio.get_running_loop().create_future()
            self._gate.append(fut)
            try:
                await fut
            finally:
                if not fut.done():
                    fut.cancel()
                with contextlib.suppress(ValueError):
                    self._gate.remove(fut)

    def _open_gate(self) -> None:
        # Wake the first in line; once it has taken its chunk, it wakes the next while there is room.
        while self._gate and self.held_bytes < self.held_limit:
            fut = self._gate.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _note_peak(self) -> None:
        total = self.received_bytes + self.held_bytes
        if total > self.peak_in_flight:
            self.peak_in_flight = total

    # -- logging, stopping --------------------------------------------------------------------------

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
        self._stop_reaper()
        await self._close_listeners()
        for conn in list(self.connections):
            conn.finish_reading()
        for fut in self._gate:  # stopping handlers do not wait for room
            if not fut.done():
                fut.set_result(None)
        tasks = [c.task for c in self.connections if c.task is not None and not c.task.done()]
        cancelled = 0
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            cancelled = len(pending)
        await self._sockets_closed(min(timeout, STOP_ACCEPTING_GRACE))
        return cancelled

    async def _close_listeners(self) -> None:
        await stop_accepting(self._listening)
        for server in self._servers:
            server.close()

    async def _sockets_closed(self, timeout: float) -> None:
        """Wait until every accepted socket is closed: those accepted just before the listeners closed reach
        `_accepted` (and are refused) a few loop turns later; a loop closed before then would leak them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._unclosed and loop.time() < deadline:
            await asyncio.sleep(0.001)

    def _stop_reaper(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None

    def close(self) -> None:
        self._accepting = False
        self._stop_reaper()
        for server in self._servers:
            server.close()
        self._servers.clear()
        for conn in list(self.connections):
            conn.close()
            if conn.task is not None and not conn.task.done():
                conn.task.cancel()
        self.connections.clear()
