"""The servers of a `forward` output: connections with handshake and acks, round robin, failover.

One connection sends one chunk at a time and waits for its ack, so connections are pooled per server (the
driver's `concurrency` sends at once use as many). Balancing: each send starts at the next healthy server in
turn. A server that fails (refused connection, TLS or handshake error, closed connection, no ack in time) is
marked down for `recover_after`; the chunks it did not acknowledge go to the next server at once (failover),
and a down server is tried again once that time has passed, or before that when every server is down (the
driver's backoff paces those attempts). A pooled connection the server closed while idle is not a failure:
the chunk is sent again on a fresh connection first.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import msgpack

from collector_plugins.common import forward_protocol as fwd

MAX_ACK_BYTES = 64 * 1024  # an ack is a few dozen bytes; a server sending more than this is not answering acks


@dataclass(frozen=True, slots=True)
class Handshake:
    shared_key: str
    client_hostname: str
    username: str = ""
    password: str = ""


class Connection:
    """One TCP (or TLS) connection to a forward server, handshake done."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=MAX_ACK_BYTES)

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        server_name: str | None,
        handshake: Handshake | None,
        timeout: float,
    ) -> Connection:
        async def connect() -> Connection:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=tls, server_hostname=(server_name or host) if tls is not None else None
            )
            conn = cls(reader, writer)
            if handshake is not None:
                try:
                    await conn._handshake(handshake)
                except BaseException:
                    conn.close()
                    raise
            return conn

        return await asyncio.wait_for(connect(), timeout)

    async def _handshake(self, hs: Handshake) -> None:
        nonce, auth_salt = fwd.read_helo(await self._next())
        salt = os.urandom(16)
        self.writer.write(fwd.ping(nonce, auth_salt, hs.client_hostname, hs.shared_key, salt, hs.username, hs.password))
        await self.writer.drain()
        fwd.check_pong(await self._next(), nonce, hs.shared_key, salt)

    async def _next(self) -> Any:
        while True:
            for message in self.unpacker:
                return message
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.unpacker.feed(data)

    async def send(self, messages: list[bytes], chunks: list[str | None], timeout: float) -> set[str]:
        """Write `messages`; return the chunk ids acknowledged once every chunk was, or raise.

        A message without a chunk id (`require_ack_response: false`) counts as sent once written.
        """

        async def exchange() -> set[str]:
            self.writer.write(b"".join(messages))
            await self.writer.drain()
            waiting = {c for c in chunks if c is not None}
            acked: set[str] = set()
            while waiting:
                answer = await self._next()
                chunk = answer.get("ack") if isinstance(answer, dict) else None
                if chunk in waiting:
                    waiting.discard(chunk)
                    acked.add(chunk)
            return acked

        return await asyncio.wait_for(exchange(), timeout)

    def close(self) -> None:
        self.writer.close()


@dataclass
class Server:
    host: str
    port: int
    down_until: float = 0.0
    idle: list[Connection] = field(default_factory=list)
    failures: int = 0

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


def parse_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `host` (port 24224)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, _, port = address.partition(":")
    else:
        host, port = address, ""
    if not host:
        raise ValueError(f"no host in {address!r}")
    number = int(port) if port else 24224
    if not 0 < number < 65536:
        raise ValueError(f"port out of range in {address!r}")
    return host, number


class Servers:
    """The configured servers in turn, healthy ones first, with a pool of idle connections each."""

    def __init__(self, addresses: list[str], recover_after: float) -> None:
        self.servers = [Server(*parse_address(a)) for a in addresses]
        self.recover_after = recover_after
        self._next = 0

    def order(self) -> list[Server]:
        """Every server once: the healthy ones from the next in turn, then the down ones, soonest back first."""
        now = time.monotonic()
        n = len(self.servers)
        start = self._next
        self._next = (self._next + 1) % n
        turn = [self.servers[(start + i) % n] for i in range(n)]
        healthy = [s for s in turn if s.down_until <= now]
        down = sorted((s for s in turn if s.down_until > now), key=lambda s: s.down_until)
        return healthy + down

    def mark_down(self, server: Server) -> None:
        server.down_until = time.monotonic() + self.recover_after
        server.failures += 1
        for conn in server.idle:
            conn.close()
        server.idle.clear()

    def close(self) -> None:
        for server in self.servers:
            for conn in server.idle:
                conn.close()
            server.idle.clear()
