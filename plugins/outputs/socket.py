"""`socket` output: newline-delimited text or JSON lines to a TCP, UDP or unix socket.

Stream sockets (TCP, unix): one connection, opened on the first send and
re-opened after it breaks. Each batch is encoded once (`encoding.py`) and
written with a single `write`, so the lines of one batch are never
interleaved with another's. A send that cannot connect, or whose connection
is lost or stays blocked past `write_timeout`, raises `RetryableError`: the
shared driver retries it with exponential backoff and full jitter, which is
also the reconnection backoff. The output itself never sleeps.

A plain socket has no acknowledgement: a batch written into a connection that
the peer closes at that moment may be lost without an error (the loss of a
closed connection is noticed before the next write). Use `forward` or an
acknowledged protocol where that matters.

UDP: one datagram per record (the encoded line, newline included). A record
longer than a datagram can be (65,507 bytes) is rejected for good and goes to
the dead-letter queue; everything else is sent and never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import KINDS, Batch
from collector.log import RepeatLimiter, kv
from collector.send_result import Outcome, PermanentError, RetryableError, SendResult
from collector.units import Duration
from collector_plugins.common.listen import Address, parse_address
from collector_plugins.outputs.encoding import encoder_for

MAX_UDP_PAYLOAD = 65507
CLOSE_TIMEOUT = 5.0


class SocketOutputConfig(OutputConfig):
    type: Literal["socket"] = Field(description="Writes lines to a socket.", examples=["socket"])
    address: str = Field(
        description="Where to send: `tcp://HOST:PORT`, `udp://HOST:PORT` or `unix:///PATH` (a stream socket).",
        examples=["tcp://127.0.0.1:5170", "unix:///run/app/ingest.sock"],
    )
    codec: Literal["json", "text"] = Field(
        default="json",
        description=(
            "`json`: one JSON object per line; `text`: the `message` field only (a record without one as its "
            "JSON line)."
        ),
        examples=["json", "text"],
    )
    connect_timeout: Duration = Field(
        default=5.0, description="How long a connection attempt may take.", examples=["5s"]
    )
    write_timeout: Duration = Field(
        default=30.0,
        description="How long a write may stay blocked by a peer that does not read before the connection is "
        "closed and the batch retried.",
        examples=["30s"],
    )

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        parse_address(value, "tcp", allowed=("tcp", "udp", "unix"))
        return value

    @field_validator("connect_timeout", "write_timeout")
    @classmethod
    def _check_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value


class _StreamProtocol(asyncio.Protocol):
    """The client side of one connection: tracks loss and write flow control; ignores what the peer says."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.error: str = ""
        self._paused = False
        self._drained: asyncio.Future[None] | None = None
        self._closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        pass  # a line sink has nothing to say; whatever it sends is not ours to interpret

    def eof_received(self) -> bool:
        self.lost = True
        self.error = "peer closed the connection"
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None:
            self.error = f"{type(exc).__name__}: {exc}"
        elif not self.error:
            self.error = "connection closed"
        self._wake()
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake()

    def _wake(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drain(self) -> None:
        while self._paused and not self.lost:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    async def close(self, timeout: float) -> None:
        if self.transport is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), timeout)
        self.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), 1.0)


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.errors = 0

    def error_received(self, exc: Exception) -> None:
        self.errors += 1  # ICMP port unreachable and the like: UDP gives no delivery guarantee anyway


class SocketOutput(Output):
    type_name: ClassVar[str] = "socket"
    description: ClassVar[str] = "Writes newline-delimited text or JSON lines to a TCP, UDP or unix socket."
    Config: ClassVar[type[SocketOutputConfig]] = SocketOutputConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)

    config: SocketOutputConfig

    def __init__(self, config: SocketOutputConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.address: Address = parse_address(config.address, "tcp", allowed=("tcp", "udp", "unix"))
        self.events = 0
        self.bytes = 0
        self.connects = 0
        self.connect_failures = 0
        self.disconnects = 0
        self._encode = encoder_for(config.codec)
        self._stream: _StreamProtocol | None = None
        self._datagram: tuple[asyncio.DatagramTransport, _DatagramProtocol] | None = None
        self._connecting = asyncio.Lock()
        self._limiter = RepeatLimiter()

    def counters(self) -> dict[str, float]:
        out: dict[str, float] = {
            "events": self.events,
            "bytes": self.bytes,
            "connects": self.connects,
            "connect_failures": self.connect_failures,
            "disconnects": self.disconnects,
        }
        if self._datagram is not None:
            out["send_errors"] = self._datagram[1].errors
        return out

    async def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            await stream.close(CLOSE_TIMEOUT)
        datagram, self._datagram = self._datagram, None
        if datagram is not None:
            datagram[0].close()

    async def write(self, batch: Batch) -> None:
        result = await self.send(batch)
        if result is not None and result.per_record is not None and Outcome.DROP in result.per_record:
            raise PermanentError("records longer than a UDP datagram")

    async def send(self, batch: Batch) -> SendResult | None:
        records = batch.records
        if not records:
            return None
        if self.address.scheme == "udp":
            return await self._send_datagrams(records)
        data = self._encode(records)
        stream = await self._connected()
        assert stream.transport is not None
        stream.transport.write(data)
        try:
            await asyncio.wait_for(stream.drain(), self.config.write_timeout)
        except TimeoutError:
            self._drop_connection(stream, f"the peer did not read for {self.config.write_timeout:g}s")
            raise RetryableError(f"write to {self.address} timed out") from None
        if stream.lost:
            self._drop_connection(stream, stream.error)
            raise RetryableError(f"connection to {self.address} lost while writing: {stream.error}")
        self.events += len(records)
        self.bytes += len(data)
        return None

    async def _connected(self) -> _StreamProtocol:
        async with self._connecting:
            stream = self._stream
            if stream is not None and not stream.lost:
                return stream
            if stream is not None:
                self._drop_connection(stream, stream.error)
            loop = asyncio.get_running_loop()
            address = self.address
            try:
                if address.is_unix:
                    connecting = loop.create_unix_connection(_StreamProtocol, address.path)
                else:
                    connecting = loop.create_connection(_StreamProtocol, address.host, address.port)
                _, protocol = await asyncio.wait_for(connecting, self.config.connect_timeout)
            except (OSError, TimeoutError) as exc:
                self.connect_failures += 1
                reason = str(exc) or type(exc).__name__
                self._warn("connect", "cannot connect; the batch will be retried", error=reason)
                raise RetryableError(f"cannot connect to {address}: {reason}") from None
            self.connects += 1
            self.log.info("connected", extra=kv(component=self.ctx.name, address=str(address)))
            self._stream = protocol
            return protocol

    def _drop_connection(self, stream: _StreamProtocol, reason: str) -> None:
        if self._stream is stream:
            self._stream = None
            self.disconnects += 1
            self._warn("disconnect", "connection lost; reconnecting on the next send", reason=reason)
        if stream.transport is not None:
            stream.transport.abort()

    async def _send_datagrams(self, records: list[Any]) -> SendResult | None:
        if self._datagram is None:
            loop = asyncio.get_running_loop()
            try:
                self._datagram = await loop.create_datagram_endpoint(
                    _DatagramProtocol, remote_addr=(self.address.host, self.address.port)
                )
            except OSError as exc:
                raise RetryableError(f"cannot open a UDP socket to {self.address}: {exc}") from None
        transport = self._datagram[0]
        encode = self._encode
        outcomes: list[Outcome] = []
        sent = 0
        for record in records:
            datagram = encode([record])
            if len(datagram) > MAX_UDP_PAYLOAD:
                outcomes.append(Outcome.DROP)
                continue
            transport.sendto(datagram)
            outcomes.append(Outcome.OK)
            sent += len(datagram)
        self.bytes += sent
        self.events += outcomes.count(Outcome.OK)
        if len(outcomes) != outcomes.count(Outcome.OK):
            reasons = ["record_too_large: longer than a UDP datagram" if o is Outcome.DROP else "" for o in outcomes]
            return SendResult.partial(outcomes, reasons)
        return None

    def _warn(self, cause: str, message: str, **fields: Any) -> None:
        now, _, suppressed = self._limiter.check(cause)
        if now:
            if suppressed:
                fields["repeats_suppressed"] = suppressed
            self.log.warning(message, extra=kv(component=self.ctx.name, address=str(self.address), **fields))
