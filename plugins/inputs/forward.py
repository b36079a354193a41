"""`forward` input: the Fluent forward protocol v1 over TCP (optionally TLS) and unix sockets.

Design note. Each connection has one reader task (`common/stream_server.py`)
and one streaming msgpack `Unpacker`. Whatever one read brings is decoded
(`common/forward_protocol.py`), its events become records, and they are
emitted as one batch with `await ctx.emit`: while the downstream is full the
connection is not read and the client blocks (backpressure).

Acknowledgements: a message whose option carries `chunk` is answered with
`{"ack": chunk}` only once its events are safe: the batch carries an
`AckToken`, which the runtime and the buffers release once the batch is
durable in every disk buffer it went to, or delivered by every output with a
memory buffer. Tokens of one connection commit in order (`AckTracker`); a
commit answers every chunk up to it, in one write. A chunk is never
acknowledged if the collector stops or crashes first, so the client sends it
again (at-least-once).

With `shared_key` the server starts each connection with HELO and accepts
nothing but a valid PING, within `handshake_timeout`, until it has answered
PONG: until then at most `HANDSHAKE_MAX_BYTES` are read and only the PING is
decoded. A protocol error (bad msgpack, an unknown message shape, a message
over `max_message_bytes` or `max_message_values`, a failed or late
handshake) closes that connection alone and is counted.

Memory: what a read decodes is handed on in batches of a few MiB (a large
PackedForward chunk in several, the chunk's ack on the last), each counted
against the input's `max_in_flight_bytes` at its decoded size until the
connection's next read (`common/stream_server.py`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Annotated, Any, ClassVar, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collector.acks import AckTracker
from collector.api import ComponentContext, InputConfig, InputContext
from collector.events import LOGS, Batch
from collector.units import Duration, Size
from collector_plugins.common import forward_protocol as fp
from collector_plugins.common.listen import Scheme
from collector_plugins.common.listener_options import (
    IdleTimeout,
    ListenerOptions,
    MaxConnections,
    MaxInFlightBytes,
    SocketMode,
)
from collector_plugins.common.listeners import STOP_TIMEOUT, ListeningInput, ListenList, emit_received
from collector_plugins.common.stream_server import MAX_READ, Connection, decoded_size

# An unpacker holds a partial message plus one read (at most MAX_READ).
READ_SLACK = MAX_READ
# A partial message up to this size is carried to the next read as bytes rather than in its unpacker.
CARRY_BYTES = 64 * 1024
# What a read's decoded records may reach before they are handed on mid-read.
STEP_BYTES = 4 * 1024 * 1024


class TlsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: str = Field(
        description="The server certificate (PEM), chain included.", examples=["/etc/collector/tls.crt"]
    )
    key_file: str = Field(description="The certificate's private key (PEM).", examples=["/etc/collector/tls.key"])
    ca_file: str | None = Field(
        default=None,
        description="CA certificates (PEM) that client certificates must chain to; set to require client certificates.",
        examples=["/etc/collector/clients-ca.crt", None],
    )


class ForwardUser(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, description="User name a client authenticates with.", examples=["fluentbit"])
    password: SecretStr = Field(description="Its password (use `${VAR}`).", examples=["${FORWARD_PASSWORD}"])


class ForwardConfig(InputConfig, ListenerOptions):
    listen_scheme: ClassVar[Scheme] = "tcp"
    listen_schemes: ClassVar[tuple[Scheme, ...]] = ("tcp", "unix")

    type: Literal["forward"] = Field(description="Receives the Fluent forward protocol.", examples=["forward"])
    listen: Annotated[list[str], ListenList] = Field(
        default=["tcp://127.0.0.1:24224"],
        description=(
            "Where to listen, one address or a list: `tcp://HOST:PORT` or `unix:///PATH`. Without a scheme TCP is "
            "meant; without a host, 127.0.0.1."
        ),
        examples=["tcp://127.0.0.1:24224", ["tcp://0.0.0.0:24224", "unix:///run/collector/forward.sock"]],
    )
    tag_field: str | None = Field(
        default="tag",
        description="Field that receives each event's tag; null drops the tag.",
        examples=["tag", None],
    )
    message_key: str | None = Field(
        default="log",
        description="Event key renamed to `message` (Docker's fluentd driver and FireLens send `log`); null keeps "
        "events as they are.",
        examples=["log", None],
    )
    max_message_bytes: Size = Field(
        default=32 * 1024 * 1024,
        description="Largest forward message accepted, and largest size a compressed chunk may expand to; a "
        "larger one closes the connection.",
        examples=["32MiB"],
    )
    max_message_values: int = Field(
        default=1_000_000,
        ge=1000,
        le=100_000_000,
        description=(
            "Most values one message may decode to (each array and map counts one plus its elements, keys and "
            "values; an event of five fields is about 14). PackedForward entries are decoded in steps, and there "
            "one event may be at most this many bytes (each value takes one at least). A message past it closes "
            "the connection, counted as `too_large_messages`."
        ),
        examples=[1_000_000],
    )
    handshake_timeout: Duration = Field(
        default=10.0,
        gt=0,
        description="With `shared_key`: a client that has not completed the handshake within this is disconnected.",
        examples=["10s"],
    )
    max_connections: MaxConnections
    max_in_flight_bytes: MaxInFlightBytes
    idle_timeout: IdleTimeout
    shared_key: SecretStr | None = Field(
        default=None,
        description="Require the forward protocol's handshake with this shared key (use `${VAR}`).",
        examples=["${FORWARD_SHARED_KEY}", None],
    )
    self_hostname: str | None = Field(
        default=None,
        description="The server host name sent in the handshake; null uses the node's host name.",
        examples=["collector-1", None],
    )
    users: list[ForwardUser] = Field(
        default=[],
        description="With `shared_key`: also require one of these user names and passwords.",
        examples=[[{"username": "fluentbit", "password": "${FORWARD_PASSWORD}"}]],
    )
    tls: TlsSettings | None = Field(
        default=None,
        description="Serve TCP over TLS with this certificate and key.",
        examples=[{"cert_file": "/etc/collector/tls.crt", "key_file": "/etc/collector/tls.key"}],
    )
    socket_mode: SocketMode

    @field_validator("max_message_bytes")
    @classmethod
    def _check_max(cls, value: int) -> int:
        if not 1024 <= value <= 1024**3:
            raise ValueError("max_message_bytes must be between 1KiB and 1GiB")
        return value

    @model_validator(mode="after")
    def _check_auth(self) -> ForwardConfig:
        if self.users and self.shared_key is None:
            raise ValueError("users need shared_key: user authentication is part of the shared-key handshake")
        if self.shared_key is not None and not self.shared_key.get_secret_value():
            raise ValueError("shared_key must not be empty")
        return self


def server_ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.ca_file is not None:
        context.load_verify_locations(tls.ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class _Acks:
    """One connection's chunks waiting for their batches to be safe; acks them in order, in one write."""

    def __init__(self, conn: Connection, owner: Forward) -> None:
        self.conn = conn
        self.owner = owner
        self.tracker = AckTracker(self._commit)
        self.waiting: dict[int, list[str]] = {}
        self.sequence = 0
        self.settled = asyncio.Event()
        self.settled.set()

    def token(self, chunks: list[str]) -> Any:
        self.sequence += 1
        self.waiting[self.sequence] = chunks
        self.settled.clear()
        return self.tracker.token(self.sequence)

    def _commit(self, position: int) -> None:
        done = [seq for seq in self.waiting if seq <= position]
        chunks = [chunk for seq in done for chunk in self.waiting.pop(seq)]
        self.send(chunks)
        if not self.waiting:
            self.settled.set()

    def send(self, chunks: list[str]) -> None:
        if not chunks:
            return
        if self.conn.writable:
            self.conn.write(fp.ack(chunks))
            self.owner.acks_sent += len(chunks)
        else:
            self.owner.acks_lost += len(chunks)  # the client went away: it sends these chunks again


class _Pending:
    """What a read decoded and has not handed on yet."""

    __slots__ = ("chunks", "invalid", "nbytes", "records")

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.chunks: list[str] = []
        self.nbytes = 0
        self.invalid = 0

    def add(self, piece: fp.Decoded) -> None:
        self.records += piece.records
        self.nbytes += piece.nbytes
        self.invalid += piece.invalid

    def size(self) -> int:
        return decoded_size(len(self.records), self.nbytes)


class Forward(ListeningInput):
    type_name: ClassVar[str] = "forward"
    description: ClassVar[str] = (
        "Receives the Fluent forward protocol (Docker fluentd driver, FireLens, Fluent Bit) with acks once durable."
    )
    Config: ClassVar[type[ForwardConfig]] = ForwardConfig
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: ForwardConfig

    def __init__(self, config: ForwardConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.listeners = config.listeners(
            self.log,
            ctx.name,
            stream_handler=self._serve,
            ssl_context=server_ssl_context(config.tls) if config.tls is not None else None,
        )
        self.decoder = fp.EventDecoder(
            config.max_message_bytes, config.tag_field, config.message_key, config.max_message_values
        )
        self.credentials: fp.Credentials | None = None
        if config.shared_key is not None:
            self.credentials = fp.Credentials(
                config.shared_key.get_secret_value(),
                config.self_hostname or ctx.host.host,
                {u.username: u.password.get_secret_value() for u in config.users},
            )
        self.events = 0
        self.messages = 0
        self.invalid_events = 0
        self.protocol_errors = 0
        self.too_large = 0
        self.auth_failures = 0
        self.handshake_timeouts = 0
        self.acks_sent = 0
        self.acks_lost = 0

    def counters(self) -> dict[str, float]:
        return {
            "events": self.events,
            "messages": self.messages,
            "invalid_events": self.invalid_events,
            "protocol_errors": self.protocol_errors,
            "too_large_messages": self.too_large,
            "auth_failures": self.auth_failures,
            "handshake_timeouts": self.handshake_timeouts,
            "acks_sent": self.acks_sent,
            "acks_lost": self.acks_lost,
            **self.listeners.counters(),
        }

    def listening_fields(self) -> dict[str, Any]:
        return {"tls": self.config.tls is not None, "handshake": self.credentials is not None}

    # -- one connection ----------------------------------------------------------------------------

    async def _serve(self, conn: Connection) -> None:
        ctx = self._run_ctx
        assert ctx is not None
        acks = _Acks(conn, self)
        conn.busy = lambda: bool(acks.waiting)  # a client waiting for acks is not idle
        counter = fp.ValueCounter(self.config.max_message_values)
        rest = b""
        if self.credentials is not None:
            try:
                async with asyncio.timeout(self.config.handshake_timeout):
                    rest = await self._handshake(conn)  # events may have come right behind the PING
            except TimeoutError:
                self.handshake_timeouts += 1
                raise self._protocol_error("no handshake within handshake_timeout") from None
        # An unpacker's buffer grows to twice the largest feed and never shrinks. So one is made per read, and
        # the usual partial message at the end of a read is carried over as bytes (decoded again next time);
        # only a large one keeps its unpacker. An idle connection holds no buffer at all.
        unpacker: msgpack.Unpacker | None = None
        carry = b""
        fed = 0  # bytes fed to the unpacker
        # Where the message being received began (fed - position: the partial message the unpacker keeps).
        # Not taken from `tell()`, which also counts the bytes of a message still incomplete.
        position = 0
        try:
            while True:
                data = rest or await conn.read(len(carry) + fed - position)
                rest = b""
                if not data:
                    break
                if unpacker is None:
                    unpacker = fp.make_unpacker(self.config.max_message_bytes + READ_SLACK, counter)
                    counter.count = position = 0
                    unpacker.feed(carry)
                    fed, carry = len(carry), b""
                try:
                    unpacker.feed(data)
                except msgpack.BufferFull:
                    raise self._protocol_error("a message is larger than max_message_bytes") from None
                fed += len(data)
                # A call of its own, so that nothing it decoded outlives it.
                position = await self._decode_read(ctx, acks, conn, unpacker, counter, position)
                partial = fed - position
                if partial <= min(len(data), CARRY_BYTES):
                    carry = data[len(data) - partial :] if partial else b""
                    unpacker = None
                    fed = position = 0
                del data  # not kept while the next read waits: the budget no longer counts it
        finally:
            # Acks for what was handed on may still come (the client may wait for them); bounded.
            if acks.waiting and conn.writable:
                try:
                    await asyncio.wait_for(acks.settled.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    pass

    async def _decode_read(
        self,
        ctx: InputContext,
        acks: _Acks,
        conn: Connection,
        unpacker: msgpack.Unpacker,
        counter: fp.ValueCounter,
        position: int,
    ) -> int:
        """Decode and hand on the messages the unpacker completed; returns where the next message begins."""
        limit = self.config.max_message_bytes
        out = _Pending()
        try:
            for message in unpacker:
                counter.count = 0  # the next message counts from zero
                end = unpacker.tell()
                if end - position > limit:
                    raise fp.ProtocolError(f"a message of {end - position} bytes is over max_message_bytes")
                chunk, pieces = self.decoder.pieces(message, end - position)
                del message  # its events live on in the records only
                position = end
                self.messages += 1
                for piece in pieces:
                    out.add(piece)
                    if out.size() >= STEP_BYTES:  # hand on a large read or chunk in steps
                        await self._hand_on(ctx, acks, conn, out, token=chunk is not None)
                        out = _Pending()
                if chunk is not None:
                    out.chunks.append(chunk)
        except (ValueError, TypeError, fp.ProtocolError, msgpack.UnpackException) as exc:
            # TypeError: msgpack refuses a map whose key is a map or an array (unhashable).
            # What this read decoded before the error is handed on; then the connection is closed.
            await self._hand_on(ctx, acks, conn, out)
            if fp.is_too_large(exc):
                self.too_large += 1
            raise self._protocol_error(str(exc)) from None
        await self._hand_on(ctx, acks, conn, out)
        return position

    async def _hand_on(
        self, ctx: InputContext, acks: _Acks, conn: Connection, out: _Pending, token: bool = False
    ) -> None:
        """Emit what `out` holds; `token`: ack-track it even without chunks (a part of a chunk acked later)."""
        if out.invalid:
            self.invalid_events += out.invalid
            ctx.loss("invalid_event", out.invalid)
            self._warn("invalid_event", "events that are not [time, map] were skipped", events=out.invalid)
        if not out.records:
            if acks.waiting:  # parts handed on earlier may not be safe yet: answer after them, in order
                acks.token(out.chunks).release()
            else:
                acks.send(out.chunks)  # nothing to make safe: answer at once
            return
        self.events += len(out.records)
        # A batch a stop cancels is never acknowledged: the client sends it again. Tokens commit in order, so
        # a chunk handed on in parts is acknowledged only once every part is safe.
        ack = acks.token(out.chunks) if out.chunks or token else None
        await emit_received(ctx, Batch(LOGS, out.records, out.nbytes, ack=ack), conn)

    async def _handshake(self, conn: Connection) -> bytes:
        """HELO, then a PING decoded alone (nothing else is decoded before it passes); returns what followed it."""
        credentials = self.credentials
        assert credentials is not None
        nonce = os.urandom(16)
        auth_salt = os.urandom(16) if credentials.users else b""
        conn.write(fp.helo(nonce, auth_salt))
        unpacker = fp.make_unpacker(fp.HANDSHAKE_MAX_BYTES, fp.ValueCounter(fp.HANDSHAKE_MAX_VALUES))
        received = b""
        fed = 0  # of `received`; only the first HANDSHAKE_MAX_BYTES are decoded: the PING must be in them
        while data := await conn.read(len(received)):
            received += data
            try:
                piece = received[fed : fp.HANDSHAKE_MAX_BYTES]
                unpacker.feed(piece)
                fed += len(piece)
                message = next(unpacker, None)
            except (ValueError, TypeError, fp.ProtocolError, msgpack.UnpackException, msgpack.BufferFull) as exc:
                self.auth_failures += 1
                raise self._protocol_error(f"handshake: {exc}") from None
            if message is None:
                if len(received) >= fp.HANDSHAKE_MAX_BYTES:
                    self.auth_failures += 1
                    raise self._protocol_error(f"handshake: no PING in the first {fp.HANDSHAKE_MAX_BYTES} bytes")
                continue
            try:
                pong, client, reason = fp.check_ping(message, nonce, auth_salt, credentials)
            except fp.ProtocolError as exc:
                self.auth_failures += 1
                raise self._protocol_error(f"handshake: {exc}") from None
            conn.write(pong)
            if reason:
                self.auth_failures += 1
                raise fp.ProtocolError(f"handshake failed for client {client!r}: {reason}")
            return received[unpacker.tell() :]
        raise fp.ProtocolError("connection closed during the handshake")

    def _protocol_error(self, reason: str) -> fp.ProtocolError:
        self.protocol_errors += 1
        return fp.ProtocolError(reason)
