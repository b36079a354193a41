"""`forward`: records to Fluent forward servers, each chunk delivered only once a server acknowledged it.

A driver request becomes one PackedForward message per tag (`tag` is a record template, `{tag}` by default:
the tag the record came in with through a `forward` input), each entry `[EventTime, record]` with the record's
`timestamp` as its time and without that key; with `compress: gzip` the entries are one gzip member
(CompressedPackedForward). Every message carries a fresh `chunk` id and, with `require_ack_response` (the
default), counts as delivered only when the server answered `{"ack": chunk}`: a server that dies before
answering has its chunks sent again, to the next server at once (`servers.py`), so an aggregator killed
mid-stream loses nothing and a chunk may arrive twice (at least once; Fluentd and our input deduplicate
nothing either). Records of chunks no server acknowledged are retried by the driver; the output never
dead-letters (no forward server refuses a well-formed chunk).
"""

from __future__ import annotations

import gzip
import ssl
import time
from typing import Any, ClassVar, Literal

import msgpack
from pydantic import Field, SecretStr, field_validator, model_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter, kv
from collector.send_result import Outcome, SendResult
from collector.units import Duration
from collector_plugins.common import forward_protocol as fwd
from collector_plugins.common.aws.records import raise_unless_delivered
from collector_plugins.common.client_tls import ClientTls
from collector_plugins.common.record_encoding import json_default
from collector_plugins.common.record_templates import RecordTemplate, check_record_template
from collector_plugins.outputs.forward.servers import Connection, Handshake, Server, Servers, parse_address


def _gzip_compress(data: bytes) -> bytes:
    """One gzip member; ISA-L's igzip (several times faster than zlib's) where installed."""
    try:
        from isal import igzip
    except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
        return gzip.compress(data, 1)
    return bytes(igzip.compress(data, 1))


class ForwardOutputConfig(OutputConfig):
    type: Literal["forward"] = Field(
        description="Sends records with the Fluent forward protocol.", examples=["forward"]
    )
    servers: list[str] = Field(
        min_length=1,
        description="Forward servers, `host:port` (port 24224 if omitted); requests are balanced over them in "
        "turn, and a server that fails is skipped for `recover_after`.",
        examples=[["aggregator-1.internal:24224", "aggregator-2.internal:24224"]],
    )
    tag: str = Field(
        "{tag}",
        description="Tag of each record, a record template; `{tag}` is the tag a `forward` input received it with "
        "(records without one are tagged `unknown`).",
        examples=["{tag}", "node.{host}.{service}"],
    )
    compress: Literal["none", "gzip"] = Field(
        "none",
        description="`gzip`: CompressedPackedForward (less network, more CPU on both ends).",
        examples=["gzip"],
    )
    require_ack_response: bool = Field(
        True,
        description="Wait for the server's ack of each chunk before counting it delivered (at least once). Off: "
        "delivered once written, and a server that dies loses what it had not yet stored.",
        examples=[True],
    )
    ack_timeout: Duration = Field(
        30.0,
        gt=0,
        le=600,
        description="How long to wait for a chunk's ack before trying another server.",
        examples=["30s"],
    )
    connect_timeout: Duration = Field(
        5.0, gt=0, le=120, description="How long to wait to connect and complete the handshake.", examples=["5s"]
    )
    recover_after: Duration = Field(
        10.0,
        gt=0,
        le=3600,
        description="How long a server that failed is skipped while others are up.",
        examples=["10s"],
    )
    shared_key: SecretStr | None = Field(
        None,
        description="Shared key of the servers' handshake (`<security>` in Fluentd, `Shared_Key` in Fluent Bit; use "
        "`${VAR}`).",
        examples=["${FORWARD_SHARED_KEY}"],
    )
    self_hostname: str | None = Field(
        None, description="Host name sent in the handshake (default: the node's).", examples=["node-1"]
    )
    username: str | None = Field(
        None, description="User name, for servers that also require users.", examples=["agent"]
    )
    password: SecretStr | None = Field(
        None, description="Its password (use `${VAR}`).", examples=["${FORWARD_PASSWORD}"]
    )
    tls: ClientTls | None = Field(
        None,
        description="TLS to the servers: `ca_file`, `cert_file`/`key_file`, `server_name`, `verify`.",
        examples=[{"ca_file": "/etc/ssl/aggregator-ca.pem"}],
    )

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        return check_record_template(value)

    @field_validator("servers")
    @classmethod
    def _servers(cls, value: list[str]) -> list[str]:
        for address in value:
            parse_address(address)
        return value

    @model_validator(mode="after")
    def _auth(self) -> ForwardOutputConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("`username` and `password` go together")
        if self.username is not None and self.shared_key is None:
            raise ValueError("`username` needs `shared_key`: user authentication is part of the shared-key handshake")
        return self


def _entries_packer() -> msgpack.Packer:
    return msgpack.Packer(autoreset=False, use_bin_type=True, default=json_default)


class ForwardOutput(Output):
    type_name: ClassVar[str] = "forward"
    description: ClassVar[str] = "Sends logs to Fluent forward servers (aggregators): acks, failover, TLS, shared key."
    Config: ClassVar[type[ForwardOutputConfig]] = ForwardOutputConfig
    accepts: ClassVar[frozenset[str]] = frozenset({LOGS})
    default_batch_timeout: ClassVar[float] = 0.2
    # No protocol limit; Fluent Bit's in_forward refuses chunks past its Buffer_Max_Size (6,144,000 bytes by default).
    default_max_events: ClassVar[int | None] = 5000
    default_max_bytes: ClassVar[int | None] = 3 * 1024 * 1024

    config: ForwardOutputConfig

    def __init__(self, config: ForwardOutputConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._tag = RecordTemplate(config.tag, ctx.host.as_dict())
        self.servers = Servers(config.servers, config.recover_after)
        self._tls: ssl.SSLContext | None = None  # built at start (it reads the certificate files)
        self._handshake = (
            Handshake(
                config.shared_key.get_secret_value(),
                config.self_hostname or ctx.host.host,
                config.username or "",
                config.password.get_secret_value() if config.password is not None else "",
            )
            if config.shared_key is not None
            else None
        )
        self._limiter = RepeatLimiter(60.0)
        self.chunks_sent = 0
        """Chunks written to a server."""
        self.chunks_acked = 0
        """Chunks a server acknowledged (or written, without `require_ack_response`)."""
        self.server_failures = 0
        """Times a server failed (connection, handshake, no ack in time) and was marked down."""

    def counters(self) -> dict[str, float]:
        return {
            "chunks_sent": self.chunks_sent,
            "chunks_acked": self.chunks_acked,
            "server_failures": self.server_failures,
        }

    async def start(self) -> None:
        tls = self.config.tls
        self._tls = tls.context() if tls is not None and tls.enabled else None

    async def stop(self) -> None:
        self.servers.close()

    async def write(self, batch: Batch) -> None:
        raise_unless_delivered(await self.send(batch))

    def _messages(self, records: list[Any]) -> list[tuple[bytes, str | None, list[int]]]:
        """One (message, chunk id, record indices) per tag."""
        groups: dict[str, list[int]] = {}
        template = self._tag
        if template.static:
            groups[template.render({})] = list(range(len(records)))
        else:
            for i, record in enumerate(records):
                groups.setdefault(template.render(record), []).append(i)
        now = time.time()
        messages = []
        for tag, indices in groups.items():
            packer = _entries_packer()
            event_time = fwd.encode_event_time
            for i in indices:
                record = records[i]
                ts = record.get("timestamp")
                if isinstance(ts, int | float) and 0 <= ts < 2**32:
                    body = {k: v for k, v in record.items() if k != "timestamp"}
                else:
                    ts, body = now, record
                try:
                    packer.pack([event_time(ts), body])
                except (TypeError, ValueError, OverflowError):
                    packer.pack([event_time(ts), {"unserialisable": repr(body)[:4096]}])
            entries = packer.bytes()
            option: dict[str, Any] = {"size": len(indices)}
            chunk = fwd.new_chunk_id() if self.config.require_ack_response else None
            if chunk is not None:
                option["chunk"] = chunk
            if self.config.compress == "gzip":
                entries = _gzip_compress(entries)
                option["compressed"] = "gzip"
            messages.append((msgpack.packb([tag, entries, option], use_bin_type=True), chunk, indices))
        return messages

    async def send(self, batch: Batch) -> SendResult:
        records = batch.records
        if not records:
            return SendResult.ok()
        pending = self._messages(records)
        reason = ""
        for server in self.servers.order():
            try:
                pending = await self._send_to(server, pending)
            except (OSError, TimeoutError, fwd.HandshakeError, msgpack.UnpackException, ValueError) as exc:
                reason = f"{server.name}: {type(exc).__name__}: {exc}"
                self.server_failures += 1
                self.servers.mark_down(server)
                now, _, suppressed = self._limiter.check("down", server.name)
                if now:
                    self.log.warning(
                        "forward server failed; trying the next one",
                        extra=kv(component=self.ctx.name, error=reason, repeats_suppressed=suppressed),
                    )
                continue
            if not pending:
                return SendResult.ok()
        if len(pending) == 1 or all(len(p[2]) == len(records) for p in pending):
            return SendResult.retry(reason or "no server acknowledged")
        outcomes = [Outcome.OK] * len(records)
        for _, _, indices in pending:
            for i in indices:
                outcomes[i] = Outcome.RETRY
        return SendResult.partial(outcomes, [reason if o is Outcome.RETRY else "" for o in outcomes])

    async def _send_to(
        self, server: Server, messages: list[tuple[bytes, str | None, list[int]]]
    ) -> list[tuple[bytes, str | None, list[int]]]:
        """Send `messages` to `server`; the ones it did not acknowledge (none, or raises)."""
        config = self.config
        reused = bool(server.idle)
        conn = server.idle.pop() if reused else await self._open(server)
        try:
            self.chunks_sent += len(messages)
            try:
                acked = await conn.send([m for m, _, _ in messages], [c for _, c, _ in messages], config.ack_timeout)
            except (OSError, EOFError) as exc:
                if not reused:
                    raise
                # An idle pooled connection the server closed meanwhile: once more on a fresh one.
                conn.close()
                self.log.debug("pooled forward connection was closed; reconnecting %s", kv(error=exc))
                conn = await self._open(server)
                acked = await conn.send([m for m, _, _ in messages], [c for _, c, _ in messages], config.ack_timeout)
        except BaseException:
            conn.close()
            raise
        server.idle.append(conn)
        left = [m for m in messages if m[1] is not None and m[1] not in acked]
        self.chunks_acked += len(messages) - len(left)
        return left

    async def _open(self, server: Server) -> Connection:
        return await Connection.open(
            server.host,
            server.port,
            self._tls,
            self.config.tls.server_name if self.config.tls is not None else None,
            self._handshake,
            self.config.connect_timeout,
        )
