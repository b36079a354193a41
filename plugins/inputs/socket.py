"""`socket` input: newline-delimited text or JSON lines over TCP, UDP or unix sockets.

Stream sockets (TCP, unix): each connection has its own reader task
(`plugins/common/stream_server.py`) that cuts what arrives into lines, builds
one batch per read and awaits `ctx.emit`; while it waits, that connection is
not read, which is the TCP backpressure. A connection that misbehaves (a
handler error) closes alone.

Datagram sockets (UDP, unixgram): each datagram holds one or more lines; a
burst of datagrams becomes one batch handed on with `ctx.try_emit`, because a
UDP sender cannot be slowed down: what a full channel refuses is counted as
`channel_full` by the runtime.

A line longer than `max_line_bytes` is cut to that length and marked
`truncated: true` (the rest of it is discarded and counted in the loss ledger
as `truncated`). With `codec: json` every line must be a JSON object; other
lines are dropped and counted as `invalid_json`.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator

from collector.api import ComponentContext, InputConfig
from collector.events import LOGS, Batch
from collector.units import Size
from collector_plugins.common.framing import LineSplitter
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


class SocketInputConfig(InputConfig, ListenerOptions):
    listen_scheme: ClassVar[Scheme] = "tcp"

    type: Literal["socket"] = Field(description="Receives lines over a socket.", examples=["socket"])
    listen: Annotated[list[str], ListenList] = Field(
        description=(
            "Where to listen, one address or a list: `tcp://HOST:PORT`, `udp://HOST:PORT`, `unix:///PATH` "
            "(stream) or `unixgram:///PATH` (datagrams). Without a scheme TCP is meant; without a host, 127.0.0.1."
        ),
        examples=["tcp://127.0.0.1:5170", ["tcp://127.0.0.1:5170", "udp://127.0.0.1:5170"]],
    )
    codec: Literal["text", "json"] = Field(
        default="text",
        description=(
            "`text`: each line becomes the `message` (UTF-8, invalid bytes replaced); `json`: each line is a "
            "JSON object whose keys become the record's fields (`timestamp` kept if it is a number)."
        ),
        examples=["text", "json"],
    )
    max_line_bytes: Size = Field(
        default=102400,
        description="Longer lines are cut to this many bytes and get the field `truncated: true`.",
        examples=[102400, "1MiB"],
    )
    max_connections: MaxConnections
    max_in_flight_bytes: MaxInFlightBytes
    idle_timeout: IdleTimeout
    socket_mode: SocketMode
    peer_field: PeerField

    @field_validator("max_line_bytes")
    @classmethod
    def _check_max_line(cls, value: int) -> int:
        if not 1 <= value <= 64 * 1024 * 1024:
            raise ValueError("max_line_bytes must be between 1 byte and 64MiB")
        return value


class SocketInput(ListeningInput):
    type_name: ClassVar[str] = "socket"
    description: ClassVar[str] = "Receives newline-delimited text or JSON lines over TCP, UDP or unix sockets."
    Config: ClassVar[type[SocketInputConfig]] = SocketInputConfig
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: SocketInputConfig

    def __init__(self, config: SocketInputConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.listeners = config.listeners(
            self.log,
            ctx.name,
            stream_handler=self._serve,
            datagram_handler=self._on_datagrams,
            max_datagram_bytes=min(config.max_line_bytes, MAX_DATAGRAM_BYTES),
        )
        self.lines = 0
        self.truncated = 0
        self.invalid_json = 0

    def counters(self) -> dict[str, float]:
        return {
            "lines": self.lines,
            "truncated_lines": self.truncated,
            "invalid_json": self.invalid_json,
            **self.listeners.counters(),
        }

    # -- stream connections ------------------------------------------------------------------------

    async def _serve(self, conn: Connection) -> None:
        ctx = self._run_ctx
        assert ctx is not None
        splitter = LineSplitter(self.config.max_line_bytes)
        peer = conn.peer
        while True:
            data = await conn.read(splitter.pending)  # a partial line stays counted against the memory budget
            if not data:
                break
            lines, cuts = splitter.feed(data)
            batch = Batch(LOGS, self._records(lines, cuts, peer), len(data))
            del data, lines  # nothing of this read stays alive while the next waits: the budget no longer counts it
            await emit_received(ctx, batch, conn)
            del batch
        lines, cuts = splitter.finish()
        if lines:
            await emit_received(ctx, Batch(LOGS, self._records(lines, cuts, peer), sum(map(len, lines))))

    # -- datagrams ---------------------------------------------------------------------------------

    def _on_datagrams(self, datagrams: list[tuple[bytes, Any]]) -> None:
        ctx = self._run_ctx
        assert ctx is not None
        limit = self.listeners.max_datagram_bytes
        records: list[dict[str, Any]] = []
        nbytes = 0
        peer_field = self.config.peer_field
        for data, sender in datagrams:
            nbytes += len(data)
            cut = len(data) > limit
            if cut:
                data = data[:limit]
            data = data.rstrip(b"\r\n")
            if not data:
                continue
            lines = data.split(b"\n")
            cuts = (len(lines) - 1,) if cut else ()
            peer = datagram_peer(sender) if peer_field else ""
            records.extend(self._records(lines, cuts, peer))
        if records:
            ctx.try_emit(Batch(LOGS, records, nbytes))

    # -- lines to records --------------------------------------------------------------------------

    def _records(self, lines: list[bytes], cuts: tuple[int, ...], peer: str) -> list[dict[str, Any]]:
        ts = time.time()
        self.lines += len(lines)
        if self.config.codec == "json":
            records = self._json_records(lines, ts)
        else:
            records = [{"timestamp": ts, "message": line.decode("utf-8", "replace")} for line in lines]
        if cuts:
            self._mark_truncated(records, lines, cuts)
        peer_field = self.config.peer_field
        if peer_field:
            for record in records:
                record[peer_field] = peer
        return records

    def _json_records(self, lines: list[bytes], ts: float) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        invalid = 0
        loads = orjson.loads
        for line in lines:
            try:
                value = loads(line)
            except orjson.JSONDecodeError:
                value = None
            if type(value) is not dict:
                if line.strip():
                    invalid += 1
                continue
            stamp = value.get("timestamp")
            if type(stamp) is not float:
                if type(stamp) is int:
                    value["timestamp"] = float(stamp)
                else:
                    if stamp is not None:
                        value["timestamp_raw"] = stamp
                    value["timestamp"] = ts
            records.append(value)
        if invalid:
            self.invalid_json += invalid
            self.ctx.loss("invalid_json", invalid)
            self._warn("invalid_json", "lines that are not JSON objects were dropped", events=invalid)
        return records

    def _mark_truncated(self, records: list[dict[str, Any]], lines: list[bytes], cuts: tuple[int, ...]) -> None:
        self.truncated += len(cuts)
        self.ctx.loss("truncated", len(cuts))  # each line is kept, its tail is not
        self._warn(
            "truncated",
            "lines longer than max_line_bytes were truncated (the rest of each line is discarded)",
            max_line_bytes=self.config.max_line_bytes,
            lines=len(cuts),
        )
        if self.config.codec == "json":
            return  # a cut JSON line does not parse: it was counted as invalid_json
        for i in cuts:
            records[i]["truncated"] = True
