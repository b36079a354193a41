"""The Fluent forward protocol v1, server side: decoding event messages, the handshake, acks.

Reference: the Forward Protocol Specification v1 (fluent/fluentd wiki). Every
message is one msgpack array on the stream:

- Message:                  [tag, time, record, option?]
- Forward:                  [tag, [[time, record], ...], option?]
- PackedForward:            [tag, bin(concatenated [time, record] msgpack), option?]
- CompressedPackedForward:  the same with option `compressed: "gzip"` (one or
  more gzip members); `"zstd"` is accepted where the zstandard module is
  installed (Fluent Bit can send it).

`time` is an integer (seconds) or an EventTime (ext type 0: big-endian
uint32 seconds, uint32 nanoseconds); decoded to float epoch seconds. The
option map may carry `chunk`: the server answers `{"ack": chunk}` once it has
taken responsibility for the events (the input does so only when they are
durable downstream).

Handshake (only with a shared key): server HELO `["HELO", {nonce, auth,
keepalive}]`; client PING `["PING", client_hostname, shared_key_salt,
sha512_hex(salt + client_hostname + nonce + shared_key), username,
sha512_hex(auth_salt + username + password)]`; server PONG `["PONG", ok,
reason, server_hostname, sha512_hex(salt + server_hostname + nonce +
shared_key)]`.

Errors: a message that is not msgpack, not one of the shapes above, larger
than the limit, or whose packed/compressed entries do not decode raises
`ProtocolError` (the connection cannot be trusted further).

Decoded size. msgpack is compact: one byte can become a 64-byte Python dict,
so a 30 MB message of empty maps would take gigabytes. Every unpacker here
counts the values it builds (`ValueCounter`: each array or map counts one
plus its elements, keys and values) and refuses a message past
`max_message_values` with `TooLarge`; arrays and maps longer than that are
refused at their header, before anything is allocated. PackedForward
entries, the bulk of large chunks, are decoded in steps of `STEP_BYTES`
(`EventDecoder.pieces`), so a large chunk never exists decoded all at once;
there an event may be at most `max_message_values` bytes long, which bounds
its values as well (each takes at least one byte) without counting them. An event inside a
valid message that is not `[time, record-map]` is skipped and counted, so that
one bad event does not make a client resend its whole chunk forever.
"""

from __future__ import annotations

import hmac
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import msgpack

try:  # zstd for CompressedPackedForward is optional
    import zstandard
except ImportError:  # pragma: no cover - depends on the install
    zstandard = None  # type: ignore[assignment]

from collector_plugins.common.forward_protocol import _EVENT_TIME, EVENT_TIME_EXT, encode_event_time
from collector_plugins.common.forward_protocol import digest as _digest

__all__ = ["EVENT_TIME_EXT", "encode_event_time"]  # shared with the forward output (common/forward_protocol.py)


# PackedForward entries are decoded and handed on in pieces of about this many bytes (a few MiB decoded).
STEP_BYTES = 256 * 1024
# A PING is six short strings; anything bigger before the handshake is refused undecoded.
HANDSHAKE_MAX_BYTES = 64 * 1024
HANDSHAKE_MAX_VALUES = 16


class ProtocolError(Exception):
    """The peer broke the protocol; its connection is closed."""


class TooLarge(ProtocolError):
    """A message decodes to more values than allowed."""


class ValueCounter:
    """The unpackers' `list_hook` and `object_hook`: counts the values decoded since `count` was reset."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def __call__(self, container: Any) -> Any:
        self.count += len(container) + 1
        if self.count > self.limit:
            raise TooLarge(f"a message decodes to more than {self.limit} values (max_message_values)")
        return container


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EVENT_TIME_EXT and len(data) == 8:
        seconds, nanos = _EVENT_TIME.unpack(data)
        return seconds + nanos / 1e9
    return msgpack.ExtType(code, data)


def is_too_large(exc: BaseException) -> bool:
    """A message refused for its decoded size: by the value count, or by msgpack at an array or map header."""
    return isinstance(exc, TooLarge) or (isinstance(exc, ValueError) and "exceeds max_" in str(exc))


def make_unpacker(max_bytes: int, counter: ValueCounter | None = None) -> msgpack.Unpacker:
    """A streaming unpacker holding at most `max_bytes` of input, decoding at most `counter.limit` values.

    Without a counter, what one object decodes to is bounded by its bytes only (each value takes at least one)."""
    if counter is None:
        return msgpack.Unpacker(
            raw=False,
            ext_hook=_ext_hook,
            timestamp=1,
            unicode_errors="replace",
            max_buffer_size=max_bytes,
            strict_map_key=False,
        )
    return msgpack.Unpacker(
        raw=False,
        ext_hook=_ext_hook,
        timestamp=1,  # a msgpack Timestamp (ext -1), should a client send one, becomes float seconds
        unicode_errors="replace",
        max_buffer_size=max_bytes,
        # Checked at the header, before msgpack allocates the list or presized dict.
        max_array_len=min(counter.limit, max_bytes),
        max_map_len=min(counter.limit // 2, max_bytes),
        list_hook=counter,
        object_hook=counter,
        strict_map_key=False,
    )


@dataclass(slots=True)
class Decoded:
    """What one forward message carries: its events (already records) and its chunk id, if any."""

    records: list[dict[str, Any]]
    chunk: str | None
    invalid: int  # events skipped because they were not [time, map]
    nbytes: int  # the size of the message's event data on the wire (decompressed for compressed chunks)


class EventDecoder:
    """Turns forward messages into records.

    Each record is the event's map plus `timestamp` (float epoch seconds) and,
    when configured, the tag under `tag_field`; the value under `message_key`
    (Docker and FireLens send `log`) becomes `message` unless the event already
    has one. An event's own `timestamp` key is kept as `timestamp_raw`.
    """

    def __init__(
        self, max_bytes: int, tag_field: str | None, message_key: str | None, max_values: int = 1_000_000
    ) -> None:
        self.max_bytes = max_bytes
        self.max_values = max_values
        self.tag_field = tag_field
        self.message_key = message_key if message_key != "message" else None

    def decode(self, message: Any, wire_bytes: int) -> Decoded:
        """All of a message's events at once (the input hands large ones on in `pieces`)."""
        chunk, pieces = self.pieces(message, wire_bytes)
        out = Decoded([], chunk, 0, 0)
        for piece in pieces:
            out.records += piece.records
            out.invalid += piece.invalid
            out.nbytes += piece.nbytes
        return out

    def pieces(self, message: Any, wire_bytes: int) -> tuple[str | None, Iterator[Decoded]]:
        """The message's chunk id, and its events in pieces of at most about `STEP_VALUES` values.

        The pieces are decoded as they are taken; a piece may raise `ProtocolError`."""
        if type(message) is not list or not 2 <= len(message) <= 4:
            raise ProtocolError(f"expected a forward message array, got {_describe(message)}")
        tag = message[0]
        if type(tag) is not str:
            raise ProtocolError(f"the tag must be a string, got {_describe(tag)}")
        second = message[1]
        kind = type(second)
        if kind is list:  # Forward
            option = _option(message, 2, 3)
            records, invalid = self._records(tag, second)
            chunk = _chunk(option)
            return chunk, iter((Decoded(records, chunk, invalid, wire_bytes),))
        if kind is bytes:  # PackedForward, maybe compressed
            option = _option(message, 2, 3)
            chunk = _chunk(option)
            return chunk, self._packed(tag, second, option, chunk)
        if len(message) < 3:
            raise ProtocolError("a Message mode message needs [tag, time, record]")
        option = _option(message, 3, 4)
        records, invalid = self._records(tag, [[second, message[2]]])
        chunk = _chunk(option)
        return chunk, iter((Decoded(records, chunk, invalid, wire_bytes),))

    def _packed(self, tag: str, data: bytes, option: dict[str, Any] | None, chunk: str | None) -> Iterator[Decoded]:
        compressed = option.get("compressed") if option else None
        if compressed is not None and compressed != "text":
            data = decompress(data, compressed, self.max_bytes)
        # No counting hooks here: they would cost a third of the decoding. The bytes are fed a step at a
        # time instead, and an event may be at most `max_values` bytes long, so it decodes to at most
        # `max_values` values (each takes a byte at least) and a step to a few MiB.
        limit = self.max_values
        unpacker = make_unpacker(STEP_BYTES + limit + 1)
        view = memoryview(data)
        entries: list[Any] = []
        start = end = fed = 0  # where this piece began, where the last whole event ended, bytes fed
        try:
            while fed < len(data):
                unpacker.feed(view[fed : fed + STEP_BYTES])
                fed = min(fed + STEP_BYTES, len(data))
                for entry in unpacker:
                    entries.append(entry)
                    if (size := unpacker.tell() - end) > limit:
                        raise TooLarge(f"an event of a packed chunk is {size} bytes, over {limit} (max_message_values)")
                    end += size
                if fed - end > limit:
                    raise TooLarge(f"an event of a packed chunk is longer than {limit} bytes (max_message_values)")
                if end - start >= STEP_BYTES and fed < len(data):
                    records, invalid = self._records(tag, entries)
                    entries = []
                    yield Decoded(records, None, invalid, end - start)
                    start = end
            # An event cut short leaves no trace in `tell()`; a nil fed behind the data comes back as a
            # nil of its own only if nothing was left unfinished (it cannot complete a pending event as nil).
            unpacker.feed(b"\xc0")
            complete = list(unpacker) == [None]
        except (ValueError, TypeError, msgpack.UnpackException) as exc:  # TypeError: an unhashable map key
            raise ProtocolError(f"packed entries do not decode: {exc}") from None
        if not complete:
            raise ProtocolError("packed entries end in the middle of an event")
        records, invalid = self._records(tag, entries)
        yield Decoded(records, chunk, invalid, len(data) - start)

    def _records(self, tag: str, entries: Iterable[Any]) -> tuple[list[dict[str, Any]], int]:
        tag_field, message_key = self.tag_field, self.message_key
        records: list[dict[str, Any]] = []
        append = records.append
        invalid = 0
        for entry in entries:
            if type(entry) is not list or len(entry) != 2:
                invalid += 1
                continue
            stamp, record = entry
            if type(record) is not dict:
                invalid += 1
                continue
            kind = type(stamp)
            if kind is not float:
                if kind is int:
                    stamp = float(stamp)
                else:
                    invalid += 1
                    continue
            if "timestamp" in record:
                record["timestamp_raw"] = record["timestamp"]
            record["timestamp"] = stamp
            if tag_field is not None:
                record[tag_field] = tag
            if message_key is not None and message_key in record and "message" not in record:
                record["message"] = record.pop(message_key)
            append(record)
        return records, invalid


def decompress(data: bytes, method: Any, limit: int) -> bytes:
    """Decompress a CompressedPackedForward entry stream, refusing to expand past `limit` bytes."""
    if method == "gzip":
        out = bytearray()
        rest = data
        try:
            while rest:
                inflater = zlib.decompressobj(wbits=31)
                out += inflater.decompress(rest, limit + 1 - len(out))
                if len(out) > limit or inflater.unconsumed_tail:
                    raise ProtocolError(f"compressed entries expand past {limit} bytes")
                if not inflater.eof:
                    raise ProtocolError("compressed entries are cut short")
                rest = inflater.unused_data  # concatenated gzip members
        except zlib.error as exc:
            raise ProtocolError(f"compressed entries do not inflate: {exc}") from None
        return bytes(out)
    if method == "zstd" and zstandard is not None:
        try:
            with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as reader:
                expanded: bytes = reader.read(limit + 1)
        except zstandard.ZstdError as exc:
            raise ProtocolError(f"compressed entries do not decompress: {exc}") from None
        if len(expanded) > limit:
            raise ProtocolError(f"compressed entries expand past {limit} bytes")
        return expanded
    raise ProtocolError(f"unsupported compression {method!r}")


def _option(message: list[Any], index: int, length: int) -> dict[str, Any] | None:
    if len(message) > length:
        raise ProtocolError(f"a forward message has at most {length} elements")
    if len(message) <= index:
        return None
    option = message[index]
    if option is None:
        return None
    if type(option) is not dict:
        raise ProtocolError(f"the option must be a map, got {_describe(option)}")
    return option


def _chunk(option: dict[str, Any] | None) -> str | None:
    if not option:
        return None
    chunk = option.get("chunk")
    if chunk is None:
        return None
    if type(chunk) is not str or not chunk:
        raise ProtocolError("the chunk option must be a non-empty string")
    return chunk


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def ack(chunks: list[str]) -> bytes:
    """The ack responses for `chunks`, concatenated for one write."""
    return b"".join(msgpack.packb({"ack": chunk}) for chunk in chunks)


# -- handshake ------------------------------------------------------------------------------------------


def helo(nonce: bytes, auth_salt: bytes, keepalive: bool = True) -> bytes:
    return msgpack.packb(["HELO", {"nonce": nonce, "auth": auth_salt, "keepalive": keepalive}], use_bin_type=True)


@dataclass(frozen=True)
class Credentials:
    shared_key: str
    server_hostname: str
    users: dict[str, str]  # username -> password; empty: no user authentication


def check_ping(message: Any, nonce: bytes, auth_salt: bytes, credentials: Credentials) -> tuple[bytes, str, str]:
    """Verify a PING; returns (the PONG to send, the client's hostname, "" or why it failed)."""
    if type(message) is not list or len(message) != 6 or message[0] != "PING":
        raise ProtocolError(f"expected a PING during the handshake, got {_describe(message)}")
    _, client_hostname, salt, key_digest, username, password_digest = message
    if not isinstance(client_hostname, str) or not isinstance(salt, str | bytes):
        raise ProtocolError("malformed PING")
    if not isinstance(key_digest, str) or not isinstance(username, str) or not isinstance(password_digest, str):
        raise ProtocolError("malformed PING")
    key = credentials.shared_key
    reason = ""
    if not hmac.compare_digest(key_digest, _digest(salt, client_hostname, nonce, key)):
        reason = "shared key mismatch"
    elif credentials.users:
        password = credentials.users.get(username)
        expected = _digest(auth_salt, username, password) if password is not None else ""
        if password is None or not hmac.compare_digest(password_digest, expected):
            reason = "username/password mismatch"
    server = credentials.server_hostname
    if reason:
        pong = ["PONG", False, reason, server, ""]
    else:
        pong = ["PONG", True, "", server, _digest(salt, server, nonce, key)]
    return msgpack.packb(pong, use_bin_type=True), client_hostname, reason
