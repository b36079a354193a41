"""The listening side of a receiving input: its addresses, sockets, stream server and datagram readers.

An input names one or more addresses (`listen`); this class binds them all in
the input's `start()`, serves them in `run()` (stream sockets through one
`StreamServer` and the input's connection handler, datagram sockets through a
`DatagramReader` each and the input's datagram callback), stops them at the
end of `run()` and releases them (closing sockets, removing unix socket files)
in the input's `stop()`, which the runtime calls whether or not `run()` ran.
`ListeningInput` is that `start()`/`stop()`; `Listeners.serving()` the serve and
stop around `run()`'s body; the shared config options are in `listener_options.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BeforeValidator

from collector.api import ComponentContext, Input, InputContext
from collector.events import Batch
from collector.log import RepeatLimiter, kv
from collector_plugins.common.datagram import DatagramReader, LossCallback
from collector_plugins.common.kernel_drops import KernelDrops
from collector_plugins.common.listen import Address, Scheme, bind, parse_address, release
from collector_plugins.common.stream_server import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_IN_FLIGHT_BYTES,
    Connection,
    Handler,
    StreamServer,
    decoded_size,
)

DatagramHandler = Callable[[list[tuple[bytes, Any]]], None]
# The largest UDP payload; also what a datagram reader receives at most.
MAX_DATAGRAM_BYTES = 65535
# How long a stopping input waits for its connections to hand on what they already received (and send acks).
STOP_TIMEOUT = 5.0


def as_list(value: Any) -> Any:
    """Config helper: `listen: tcp://...` and `listen: [tcp://..., udp://...]` mean the same kind of thing."""
    return [value] if isinstance(value, str) else value


ListenList = BeforeValidator(as_list)


def parse_addresses(values: list[str], default: Scheme, allowed: tuple[Scheme, ...]) -> list[Address]:
    """Parse and check a `listen` list: at least one address, no address twice."""
    if not values:
        raise ValueError("give at least one address to listen on")
    addresses = [parse_address(v, default, allowed) for v in values]
    seen: set[str] = set()
    for address in addresses:
        if str(address) in seen:
            raise ValueError(f"{address} is listed twice")
        seen.add(str(address))
    return addresses


class Listeners:
    def __init__(
        self,
        addresses: list[Address],
        log: logging.Logger,
        component: str,
        *,
        stream_handler: Handler | None = None,
        datagram_handler: DatagramHandler | None = None,
        max_connections: int = 1000,
        max_in_flight_bytes: int = DEFAULT_IN_FLIGHT_BYTES,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_datagram_bytes: int = MAX_DATAGRAM_BYTES,
        socket_mode: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.addresses = addresses
        self.log = log
        self.component = component
        self.stream_handler = stream_handler
        self.datagram_handler = datagram_handler
        self.max_connections = max_connections
        self.max_in_flight_bytes = max_in_flight_bytes
        self.idle_timeout = idle_timeout
        self.max_datagram_bytes = max_datagram_bytes
        self.socket_mode = socket_mode
        self.ssl_context = ssl_context
        self.sockets: list[socket.socket] = []
        """Bound sockets, in the order of `addresses` (after `bind`)."""
        self.server: StreamServer | None = None
        self.readers: list[DatagramReader] = []
        self.loss: LossCallback | None = None
        """Where the datagram readers count the kernel's drops (`ListeningInput` sets the input's ledger)."""
        self._drops: dict[int, KernelDrops] = {}
        """The drop counter of each datagram socket (by index), made right after binding: drops from then on."""

    def bind(self) -> None:
        try:
            for address in self.addresses:
                sock = bind(address, self.socket_mode)
                self.sockets.append(sock)
                if not address.stream:
                    self._drops[len(self.sockets) - 1] = KernelDrops(sock)
        except OSError:
            self.close()
            raise

    def port(self, index: int = 0) -> int:
        """The port of the `index`th address (tests bind port 0)."""
        return int(self.sockets[index].getsockname()[1])

    def ports(self) -> list[int]:
        """The bound ports of the TCP and UDP addresses, in `listen` order."""
        return [self.port(i) for i, a in enumerate(self.addresses) if not a.is_unix]

    def __str__(self) -> str:
        return ", ".join(map(str, self.addresses))

    async def serve(self) -> None:
        streams = [s for a, s in zip(self.addresses, self.sockets, strict=True) if a.stream]
        if streams:
            if self.stream_handler is None:
                raise ValueError("this input does not accept stream sockets")
            self.server = StreamServer(
                self.stream_handler,
                self.log,
                self.component,
                self.max_connections,
                max_in_flight_bytes=self.max_in_flight_bytes,
                idle_timeout=self.idle_timeout,
            )
            await self.server.start(streams, self.ssl_context)
        for index, (address, sock) in enumerate(zip(self.addresses, self.sockets, strict=True)):
            if address.stream:
                continue
            if self.datagram_handler is None:
                raise ValueError("this input does not accept datagram sockets")
            reader = DatagramReader(
                sock,
                self.datagram_handler,
                self.max_datagram_bytes,
                self.log,
                self.component,
                loss=self.loss,
                drops=self._drops.get(index),
            )
            reader.start()
            self.readers.append(reader)

    @contextlib.asynccontextmanager
    async def serving(self, timeout: float) -> AsyncIterator[None]:
        """Serve for the body of the `async with`; then stop, stream handlers getting `timeout` seconds."""
        await self.serve()
        try:
            yield
        finally:
            await self.stop(timeout)

    async def stop(self, timeout: float) -> int:
        """Stop receiving; stream handlers get `timeout` seconds to finish. Returns how many were cancelled."""
        for reader in self.readers:
            reader.stop()
        if self.server is not None:
            return await self.server.stop(timeout)
        return 0

    def close(self) -> None:
        for reader in self.readers:
            reader.stop()
        if self.server is not None:
            self.server.close()
        sockets, self.sockets = self.sockets, []
        self._drops = {}
        for address, sock in zip(self.addresses, sockets, strict=False):
            release(address, sock)

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.server is not None:
            out["connections"] = len(self.server.connections)
            out["connections_accepted"] = self.server.accepted
            out["connections_refused"] = self.server.refused
            out["connections_closed_on_error"] = self.server.closed_on_error
            out["connections_evicted"] = self.server.evicted
            out["connections_closed_idle"] = self.server.closed_idle
            out["paused_for_memory"] = self.server.paused_for_memory
            out["in_flight_bytes"] = self.server.in_flight_bytes
            out["in_flight_bytes_peak"] = self.server.peak_in_flight
        if self.readers:
            out["receive_errors"] = sum(r.errors for r in self.readers)
            out["kernel_drops"] = sum(r.kernel_drops for r in self.readers)
        return out


class ListeningInput(Input):
    """An input that receives on `self.listeners`: bound in `start()`, served in `run()`, released in `stop()`."""

    listeners: Listeners

    def __init__(self, config: Any, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._run_ctx: InputContext | None = None
        """The context `run()` got; the connection and datagram handlers emit through it."""
        self._limiter = RepeatLimiter()

    async def start(self) -> None:
        self.listeners.loss = self.ctx.loss  # datagrams the kernel dropped are counted as `kernel_drops`
        self.listeners.bind()

    async def stop(self) -> None:
        self.listeners.close()

    async def run(self, ctx: InputContext) -> None:
        self._run_ctx = ctx
        async with self.listeners.serving(STOP_TIMEOUT):
            self.log.info(
                "listening", extra=kv(component=ctx.name, address=str(self.listeners), **self.listening_fields())
            )
            await ctx.stopping.wait()

    @classmethod
    def memory_bound(cls, config: Any) -> int:
        """What the input's connections may hold together (stream sockets only; datagrams are not held)."""
        if any(address.stream for address in config.addresses()):
            return int(config.max_in_flight_bytes)
        return 0

    def listening_fields(self) -> dict[str, Any]:
        """More fields for the `listening` log line."""
        return {}

    def _warn(self, cause: str, message: str, **fields: Any) -> None:
        """Log a warning at most once an interval per `cause`, with how many were held back."""
        now, _, suppressed = self._limiter.check(cause)
        if now:
            if suppressed:
                fields["repeats_suppressed"] = suppressed
            self.log.warning(message, extra=kv(component=self.ctx.name, **fields))


async def emit_received(ctx: InputContext, batch: Batch, conn: Connection | None = None) -> None:
    """`ctx.emit` for what a connection received: a batch a stop cancels is counted as lost (`stopped`).

    With `conn`, the batch counts against the input's memory budget at its decoded size until the
    connection's next read. An empty batch is not emitted."""
    if not batch.records:
        return
    if conn is not None:
        conn.hold(decoded_size(len(batch.records), batch.nbytes))
    try:
        await ctx.emit(batch)
    except asyncio.CancelledError:
        ctx.loss("stopped", len(batch.records))  # read from the socket but never handed on
        raise


def datagram_peer(sender: Any) -> str:
    """A datagram sender's address as `HOST:PORT`, or `unix`."""
    if isinstance(sender, tuple) and len(sender) >= 2:
        return f"{sender[0]}:{sender[1]}"
    return "unix"
