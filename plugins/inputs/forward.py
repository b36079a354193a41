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
nothing but a valid PING until it has answered PONG. A protocol error (bad
msgpack, an unknown message shape, a message over `max_message_bytes`, a
failed handshake) closes that connection alone and is counted.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Annotated, Any, ClassVar, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from collector.acks import AckTracker
from collector.api import InputConfig, InputContext
from collector.events import LOGS, Batch
from collector.units import Size
from collector_plugins.common import forward_protocol as fp
from collector_plugins.common.listen import Scheme
from collector_plugins.common.listener_options import ListenerOptions, MaxConnections, SocketMode
from collector_plugins.common.listeners import STOP_TIMEOUT, ListeningInput, ListenList, emit_received
from collector_plugins.common.stream_server import Connection

# An unpacker holds a partial message plus one read (at most the stream server's high-water mark and a chunk).
READ_SLACK = 2 * 1024 * 1024


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
    max_connections: MaxConnections
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


class Forward(ListeningInput):
    type_name: ClassVar[str] = "forward"
    description: ClassVar[str] = (
        "Receives the Fluent forward protocol (Docker fluentd driver, FireLens, Fluent Bit) with acks once durable."
    )
    Config: ClassVar[type[ForwardConfig]] = ForwardConfig
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: ForwardConfig

    def __init__(self, config: ForwardConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.listeners = config.listeners(
            self.log,
            ctx.name,
            stream_handler=self._serve,
            ssl_context=server_ssl_context(config.tls) if config.tls is not None else None,
        )
        self.decoder = fp.EventDecoder(config.max_message_bytes, config.tag_field, config.message_key)
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
        self.auth_failures = 0
        self.acks_sent = 0
        self.acks_lost = 0

    def counters(self) -> dict[str, float]:
        return {
            "events": self.events,
            "messages": self.messages,
            "invalid_events": self.invalid_events,
            "protocol_errors": self.protocol_errors,
            "auth_failures": self.auth_failures,
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
        limit = self.config.max_message_bytes
        unpacker = fp.make_unpacker(limit + READ_SLACK)
        if self.credentials is not None:
            await self._handshake(conn, unpacker)
        decode = self.decoder.decode
        buffered = self.credentials is not None  # events may have come right behind the PING
        # Where the message being received began. Not reset per read: `tell()` also counts the bytes of a
        # message still incomplete, so a message's size is measured from the end of the one before it.
        position = unpacker.tell()
        try:
            while True:
                if not buffered:
                    data = await conn.read()
                    if not data:
                        break
                    try:
                        unpacker.feed(data)
                    except msgpack.BufferFull:
                        raise self._protocol_error("a message is larger than max_message_bytes") from None
                buffered = False
                records: list[dict[str, Any]] = []
                chunks: list[str] = []
                nbytes = invalid = 0
                try:
                    for message in unpacker:
                        end = unpacker.tell()
                        if end - position > limit:
                            raise fp.ProtocolError(f"a message of {end - position} bytes is over max_message_bytes")
                        decoded = decode(message, end - position)
                        position = end
                        records += decoded.records
                        nbytes += decoded.nbytes
                        invalid += decoded.invalid
                        self.messages += 1
                        if decoded.chunk is not None:
                            chunks.append(decoded.chunk)
                except (ValueError, TypeError, fp.ProtocolError, msgpack.UnpackException) as exc:
                    # TypeError: msgpack refuses a map whose key is a map or an array (unhashable).
                    # What this read decoded before the error is handed on; then the connection is closed.
                    await self._hand_on(ctx, acks, records, chunks, nbytes, invalid)
                    raise self._protocol_error(str(exc)) from None
                await self._hand_on(ctx, acks, records, chunks, nbytes, invalid)
        finally:
            # Acks for what was handed on may still come (the client may wait for them); bounded.
            if acks.waiting and conn.writable:
                try:
                    await asyncio.wait_for(acks.settled.wait(), STOP_TIMEOUT)
                except TimeoutError:
                    pass

    async def _hand_on(
        self,
        ctx: InputContext,
        acks: _Acks,
        records: list[dict[str, Any]],
        chunks: list[str],
        nbytes: int,
        invalid: int,
    ) -> None:
        if invalid:
            self.invalid_events += invalid
            ctx.loss("invalid_event", invalid)
            self._warn("invalid_event", "events that are not [time, map] were skipped", events=invalid)
        if not records:
            acks.send(chunks)  # nothing to make safe: answer at once
            return
        self.events += len(records)
        # A batch a stop cancels is never acknowledged: the client sends it again.
        await emit_received(ctx, Batch(LOGS, records, nbytes, ack=acks.token(chunks) if chunks else None))

    async def _handshake(self, conn: Connection, unpacker: Any) -> None:
        credentials = self.credentials
        assert credentials is not None
        nonce = os.urandom(16)
        auth_salt = os.urandom(16) if credentials.users else b""
        conn.write(fp.helo(nonce, auth_salt))
        while data := await conn.read():
            try:
                unpacker.feed(data)
                message = next(unpacker, None)
            except (ValueError, msgpack.UnpackException, msgpack.BufferFull) as exc:
                self.auth_failures += 1
                raise self._protocol_error(f"handshake: {exc}") from None
            if message is None:
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
            return
        raise fp.ProtocolError("connection closed during the handshake")

    def _protocol_error(self, reason: str) -> fp.ProtocolError:
        self.protocol_errors += 1
        return fp.ProtocolError(reason)
