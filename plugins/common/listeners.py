"""The listening side of a receiving input: its addresses, sockets, stream server and datagram readers.

An input names one or more addresses (`listen`); this class binds them all in
the input's `start()`, serves them in `run()` (stream sockets through one
`StreamServer` and the input's connection handler, datagram sockets through a
`DatagramReader` each and the input's datagram callback), stops them at the
end of `run()` and releases them (closing sockets, removing unix socket files)
in the input's `stop()`, which the runtime calls whether or not `run()` ran.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from pydantic import BeforeValidator

from collector_plugins.common.datagram import DatagramReader
from collector_plugins.common.listen import Address, Scheme, bind, parse_address, release
from collector_plugins.common.stream_server import Handler, StreamServer

DatagramHandler = Callable[[list[tuple[bytes, Any]]], None]


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
        max_datagram_bytes: int = 65535,
        socket_mode: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.addresses = addresses
        self.log = log
        self.component = component
        self.stream_handler = stream_handler
        self.datagram_handler = datagram_handler
        self.max_connections = max_connections
        self.max_datagram_bytes = max_datagram_bytes
        self.socket_mode = socket_mode
        self.ssl_context = ssl_context
        self.sockets: list[socket.socket] = []
        """Bound sockets, in the order of `addresses` (after `bind`)."""
        self.server: StreamServer | None = None
        self.readers: list[DatagramReader] = []

    def bind(self) -> None:
        try:
            for address in self.addresses:
                self.sockets.append(bind(address, self.socket_mode))
        except OSError:
            self.close()
            raise

    def port(self, index: int = 0) -> int:
        """The port of the `index`th address (tests bind port 0)."""
        return int(self.sockets[index].getsockname()[1])

    async def serve(self) -> None:
        streams = [s for a, s in zip(self.addresses, self.sockets, strict=True) if a.stream]
        if streams:
            if self.stream_handler is None:
                raise ValueError("this input does not accept stream sockets")
            self.server = StreamServer(self.stream_handler, self.log, self.component, self.max_connections)
            await self.server.start(streams, self.ssl_context)
        for address, sock in zip(self.addresses, self.sockets, strict=True):
            if address.stream:
                continue
            if self.datagram_handler is None:
                raise ValueError("this input does not accept datagram sockets")
            reader = DatagramReader(sock, self.datagram_handler, self.max_datagram_bytes, self.log, self.component)
            reader.start()
            self.readers.append(reader)

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
        for address, sock in zip(self.addresses, sockets, strict=False):
            release(address, sock)

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.server is not None:
            out["connections"] = len(self.server.connections)
            out["connections_accepted"] = self.server.accepted
            out["connections_refused"] = self.server.refused
            out["connections_closed_on_error"] = self.server.closed_on_error
        if self.readers:
            out["receive_errors"] = sum(r.errors for r in self.readers)
        return out
