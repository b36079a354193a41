"""What both ends of the Fluent forward protocol v1 share: EventTime, the handshake's digests, the client's side.

Used by the `forward` input (the server: `inputs/forward/protocol.py` decodes messages and answers PINGs)
and the `forward` output (the client). From the Forward Protocol Specification v1 (fluent/fluentd wiki):

- EventTime: msgpack ext type 0, eight bytes: big-endian uint32 seconds, uint32 nanoseconds.
- Handshake, when the server has a shared key: the server opens with `["HELO", {"nonce": bin, "auth": bin
  (the user-auth salt, empty when no users), "keepalive": bool}]`; the client answers `["PING",
  client_hostname, shared_key_salt, sha512_hex(shared_key_salt + client_hostname + nonce + shared_key),
  username, sha512_hex(auth_salt + username + password)]` (empty username and digest without users); the server
  answers `["PONG", ok, reason, server_hostname, sha512_hex(shared_key_salt + server_hostname + nonce +
  shared_key)]`, which the client checks, so a server that does not know the key cannot pose as the destination.
- Messages the client sends: PackedForward `[tag, bin(concatenated msgpack [time, record]), option]`, gzipped
  as CompressedPackedForward with option `compressed: "gzip"`; with option `chunk` (a unique id, base64 of
  128 random bits here) the server answers `{"ack": chunk}` once it has taken the events.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from typing import Any

import msgpack

EVENT_TIME_EXT = 0
_EVENT_TIME = struct.Struct(">II")


class HandshakeError(Exception):
    """The server refused the handshake, or answered one we cannot trust."""


def encode_event_time(seconds: float) -> msgpack.ExtType:
    """An EventTime for `seconds` (epoch, float)."""
    whole = int(seconds)
    return msgpack.ExtType(EVENT_TIME_EXT, _EVENT_TIME.pack(whole, round((seconds - whole) * 1e9) % 10**9))


def digest(*parts: str | bytes) -> str:
    """sha512 hex digest of the parts concatenated (strings as UTF-8), as the handshake computes them."""
    h = hashlib.sha512()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
    return h.hexdigest()


def new_chunk_id() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def read_helo(message: Any) -> tuple[bytes, bytes]:
    """(nonce, auth salt) of the server's HELO."""
    if type(message) is not list or len(message) != 2 or message[0] != "HELO" or not isinstance(message[1], dict):
        raise HandshakeError(f"expected HELO, got {str(message)[:60]}")
    options = message[1]
    nonce, auth = options.get("nonce", b""), options.get("auth", b"")
    nonce = nonce.encode() if isinstance(nonce, str) else nonce
    auth = auth.encode() if isinstance(auth, str) else auth
    if not isinstance(nonce, bytes) or not nonce or not isinstance(auth, bytes):
        raise HandshakeError("HELO without a nonce")
    return nonce, auth


def ping(
    nonce: bytes, auth_salt: bytes, client_hostname: str, shared_key: str, salt: bytes, username: str, password: str
) -> bytes:
    """The PING answering a HELO (`salt`: this connection's random shared-key salt)."""
    password_digest = digest(auth_salt, username, password) if username else ""
    message = [
        "PING",
        client_hostname,
        salt,
        digest(salt, client_hostname, nonce, shared_key),
        username,
        password_digest,
    ]
    return msgpack.packb(message, use_bin_type=True)


def check_pong(message: Any, nonce: bytes, shared_key: str, salt: bytes) -> str:
    """The server's host name from a PONG that accepted us and proved it knows the key; HandshakeError otherwise."""
    if type(message) is not list or len(message) != 5 or message[0] != "PONG":
        raise HandshakeError(f"expected PONG, got {str(message)[:60]}")
    _, ok, reason, server_hostname, server_digest = message
    if ok is not True:
        raise HandshakeError(f"the server refused the handshake: {reason}")
    if not isinstance(server_hostname, str) or not isinstance(server_digest, str):
        raise HandshakeError("malformed PONG")
    if not hmac.compare_digest(server_digest, digest(salt, server_hostname, nonce, shared_key)):
        raise HandshakeError("the server's PONG digest does not match the shared key")
    return server_hostname
