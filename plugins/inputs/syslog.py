"""`syslog` input: RFC 5424 and RFC 3164 messages over UDP, TCP and unix sockets.

Framing on stream sockets (TCP, unix) is detected per connection from its
first byte (RFC 6587): a digit means octet counting (`LENGTH SP MESSAGE`), a
`<` newline-delimited messages (non-transparent framing). `framing` can pin
one. Each read becomes one batch, parsed by `common/syslog_parser.py` (format
detected per message) and emitted with `await ctx.emit`: a connection is not
read while the downstream is full (backpressure). An octet-counted stream
that loses its framing (a frame without a length) is closed, counted as a
framing error; other connections carry on.

On datagram sockets (UDP, unixgram) each datagram is one message; a burst of
datagrams is one batch, handed on with `ctx.try_emit` (a full downstream
drops it and the runtime counts it as `channel_full`).

A message longer than `max_message_bytes` is cut, marked `truncated: true`
and counted in the loss ledger as `truncated`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import ComponentContext, InputConfig
from collector.events import LOGS, Batch
from collector.units import Size
from collector_plugins.common.framing import LineSplitter, OctetCountingFramer
from collector_plugins.common.listen import Scheme
from collector_plugins.common.listener_options import (
    IdleTimeout,
    ListenerOptions,
    MaxConnections,
    MaxInFlightBytes,
    PeerField,
    SocketMode,
)
from collector_plugins.common.listeners import (
    MAX_DATAGRAM_BYTES,
    ListeningInput,
    ListenList,
    datagram_peer,
    emit_received,
)
from collector_plugins.common.stream_server import Connection
from collector_plugins.common.syslog_parser import SyslogParser

_DIGITS = frozenset(b"0123456789")


class SyslogConfig(InputConfig, ListenerOptions):
    listen_scheme: ClassVar[Scheme] = "udp"
    listen_schemes: ClassVar[tuple[Scheme, ...]] = ("udp", "tcp", "unix", "unixgram")

    type: Literal["syslog"] = Field(description="Receives syslog messages.", examples=["syslog"])
    listen: Annotated[list[str], ListenList] = Field(
        description=(
            "Where to listen, one address or a list: `udp://HOST:PORT`, `tcp://HOST:PORT`, `unix:///PATH` "
            "(stream) or `unixgram:///PATH` (datagrams, like /dev/log). Without a scheme UDP is meant; without "
            "a host, 127.0.0.1."
        ),
        examples=["udp://127.0.0.1:5514", ["udp://127.0.0.1:5514", "tcp://127.0.0.1:5514"]],
    )
    framing: Literal["auto", "newline", "octet_counting"] = Field(
        default="auto",
        description=(
            "Stream sockets: `auto` detects each connection's framing from its first byte (a digit: octet "
            "counting; otherwise one message per line); or pin one."
        ),
        examples=["auto", "octet_counting"],
    )
    max_message_bytes: Size = Field(
        default=65536,
        description="Longer messages are cut to this many bytes and get the field `truncated: true`.",
        examples=["64KiB", 8192],
    )
    max_connections: MaxConnections
    max_in_flight_bytes: MaxInFlightBytes
    idle_timeout: IdleTimeout
    socket_mode: SocketMode
    peer_field: PeerField

    @field_validator("max_message_bytes")
    @classmethod
    def _check_max(cls, value: int) -> int:
        if not 64 <= value <= 64 * 1024 * 1024:
            raise ValueError("max_message_bytes must be between 64 bytes and 64MiB")
        return value


class Syslog(ListeningInput):
    type_name: ClassVar[str] = "syslog"
    description: ClassVar[str] = "Receives RFC 5424 and RFC 3164 syslog messages over UDP, TCP and unix sockets."
    Config: ClassVar[type[SyslogConfig]] = SyslogConfig
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: SyslogConfig

    def __init__(self, config: SyslogConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.listeners = config.listeners(
            self.log,
            ctx.name,
            stream_handler=self._serve,
            datagram_handler=self._on_datagrams,
            max_datagram_bytes=min(config.max_message_bytes, MAX_DATAGRAM_BYTES),
        )
        self.parser = SyslogParser()
        self.messages = 0
        self.truncated = 0
        self.framing_errors = 0

    def counters(self) -> dict[str, float]:
        return {
            "messages": self.messages,
            "parse_errors": self.parser.errors,
            "truncated_messages": self.truncated,
            "framing_errors": self.framing_errors,
            **self.listeners.counters(),
        }

    # -- stream connections ------------------------------------------------------------------------

    def _framer(self, first: bytes) -> LineSplitter | OctetCountingFramer:
        framing = self.config.framing
        if framing == "auto":
            framing = "octet_counting" if first[0] in _DIGITS else "newline"
        if framing == "octet_counting":
            return OctetCountingFramer(self.config.max_message_bytes)
        return LineSplitter(self.config.max_message_bytes)

    async def _serve(self, conn: Connection) -> None:
        ctx = self._run_ctx
        assert ctx is not None
        framer: LineSplitter | OctetCountingFramer | None = None
        counted = False
        peer = conn.peer
        while data := await conn.read(framer.pending if framer is not None else 0):
            if framer is None:
                framer = self._framer(data)
                counted = isinstance(framer, OctetCountingFramer)
            frames, cuts = framer.feed(data)
            batch = Batch(LOGS, self._records(frames, cuts, peer, counted), len(data))
            del data, frames  # nothing of this read stays alive while the next waits: the budget no longer counts it
            await emit_received(ctx, batch, conn)
            del batch
            if framer.error:
                self.framing_errors += 1
                raise ValueError(f"syslog framing lost: {framer.error}")
        if framer is not None:
            frames, cuts = framer.finish()
            if frames:
                records = self._records(frames, cuts, peer, counted)
                await emit_received(ctx, Batch(LOGS, records, sum(map(len, frames))))

    # -- datagrams ---------------------------------------------------------------------------------

    def _on_datagrams(self, datagrams: list[tuple[bytes, Any]]) -> None:
        ctx = self._run_ctx
        assert ctx is not None
        limit = self.listeners.max_datagram_bytes
        frames: list[bytes] = []
        cuts: list[int] = []
        nbytes = 0
        for data, _sender in datagrams:
            nbytes += len(data)
            if len(data) > limit:
                cuts.append(len(frames))
                data = data[:limit]
            frames.append(data)
        peers = [datagram_peer(sender) for _, sender in datagrams] if self.config.peer_field else None
        records = self._records_slow(frames, tuple(cuts), peers)
        if records:
            ctx.try_emit(Batch(LOGS, records, nbytes))

    # -- frames to records -------------------------------------------------------------------------

    def _records(self, frames: list[bytes], cuts: tuple[int, ...], peer: str, counted: bool) -> list[dict[str, Any]]:
        if counted or cuts or b"" in frames:
            return self._records_slow(frames, cuts, [peer] * len(frames) if self.config.peer_field else None)
        received = time.time()
        parse = self.parser.parse
        records = [parse(frame.decode("utf-8", "replace"), received) for frame in frames]
        self.messages += len(records)
        peer_field = self.config.peer_field
        if peer_field:
            for record in records:
                record[peer_field] = peer
        return records

    def _records_slow(
        self, frames: list[bytes], cuts: tuple[int, ...], peers: list[str] | None
    ) -> list[dict[str, Any]]:
        """Frames that may end with a line end (datagrams, octet-counted frames), be empty, or be cut."""
        received = time.time()
        parse = self.parser.parse
        peer_field = self.config.peer_field
        records: list[dict[str, Any]] = []
        cut = set(cuts)
        for i, frame in enumerate(frames):
            frame = frame.rstrip(b"\r\n\x00")
            if not frame:
                continue
            record = parse(frame.decode("utf-8", "replace"), received)
            if i in cut:
                record["truncated"] = True
            if peer_field and peers is not None:
                record[peer_field] = peers[i]
            records.append(record)
        self.messages += len(records)
        if cuts:
            self.truncated += len(cuts)
            self.ctx.loss("truncated", len(cuts))
            self._warn(
                "truncated",
                "messages longer than max_message_bytes were truncated",
                max_message_bytes=self.config.max_message_bytes,
                messages=len(cuts),
            )
        return records
