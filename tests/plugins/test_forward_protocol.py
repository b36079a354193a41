"""The forward protocol decoder and handshake: every mode, limits, bad input, and fuzzing."""

from __future__ import annotations

import gzip
import hashlib
import itertools
from typing import Any

import msgpack
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector_plugins.inputs.forward import protocol as fp

LIMIT = 1024 * 1024


def decoder(**options: Any) -> fp.EventDecoder:
    return fp.EventDecoder(options.pop("max_bytes", LIMIT), options.pop("tag_field", "tag"), options.pop("key", "log"))


def unpack(data: bytes) -> Any:
    unpacker = fp.make_unpacker(LIMIT)
    unpacker.feed(data)
    return next(unpacker)


def roundtrip(message: Any, **options: Any) -> fp.Decoded:
    data = msgpack.packb(message, use_bin_type=True)
    return decoder(**options).decode(unpack(data), len(data))


def packed(*events: Any) -> bytes:
    return b"".join(msgpack.packb(e, use_bin_type=True) for e in events)


T = fp.encode_event_time(1764176400.123456789)


def test_event_time_is_seconds_and_nanoseconds_big_endian() -> None:
    raw = msgpack.ExtType(0, (1764176400).to_bytes(4, "big") + (123456789).to_bytes(4, "big"))
    assert unpack(msgpack.packb(raw)) == pytest.approx(1764176400.123456789, abs=1e-6)
    assert T.code == 0 and T.data[:4] == (1764176400).to_bytes(4, "big")
    assert abs(int.from_bytes(T.data[4:], "big") - 123456789) < 1000  # float precision at this magnitude
    other = msgpack.ExtType(5, b"abc")  # other ext types are left as they are
    assert unpack(msgpack.packb(other)) == other


def test_message_mode() -> None:
    decoded = roundtrip(["app.web", T, {"log": "hello", "n": 1}, {"chunk": "c1"}])
    assert decoded.chunk == "c1" and decoded.invalid == 0
    assert decoded.records == [
        {"message": "hello", "n": 1, "timestamp": pytest.approx(1764176400.123456789), "tag": "app.web"}
    ]
    # Without option, integer time, as the Python fluent-logger sends it.
    decoded = roundtrip(["app", 1700000000, {"message": "m", "log": "kept"}])
    assert decoded.chunk is None
    assert decoded.records == [{"message": "m", "log": "kept", "timestamp": 1700000000.0, "tag": "app"}]


def test_forward_mode_with_bad_events_skipped_and_counted() -> None:
    decoded = roundtrip(
        ["t", [[T, {"log": "a"}], [1, {"log": "b"}], ["nope", {"log": "c"}], [1, "not a map"], [1], 5], {"size": 9}]
    )
    assert [r["message"] for r in decoded.records] == ["a", "b"]
    assert decoded.invalid == 4 and decoded.chunk is None


def test_packed_forward_and_own_timestamp_kept() -> None:
    entries = packed([T, {"log": "x", "timestamp": "own"}], [T, {"log": "y"}])
    decoded = roundtrip(["t", entries, {"chunk": "p1", "size": 2}], tag_field=None, key=None)
    assert decoded.records[0] == {"log": "x", "timestamp": pytest.approx(1764176400.1234567), "timestamp_raw": "own"}
    assert "tag" not in decoded.records[1]
    assert decoded.nbytes == len(entries)


def test_compressed_packed_forward_gzip_members_and_zstd() -> None:
    first = packed([1, {"log": "one"}])
    second = packed([2, {"log": "two"}], [3, {"log": "three"}])
    members = gzip.compress(first) + gzip.compress(second)  # concatenated members, as Fluentd writes them
    decoded = roundtrip(["t", members, {"compressed": "gzip", "chunk": "g"}])
    assert [r["message"] for r in decoded.records] == ["one", "two", "three"]
    assert decoded.nbytes == len(first) + len(second)
    zstd = zstandard.ZstdCompressor().compress(second)
    decoded = roundtrip(["t", zstd, {"compressed": "zstd"}])
    assert [r["message"] for r in decoded.records] == ["two", "three"]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"not": "an array"}, "expected a forward message array"),
        (["t"], "expected a forward message array"),
        ([1, []], "tag must be a string"),
        (["t", [], "option"], "option must be a map"),
        (["t", [], {"chunk": 5}], "chunk option"),
        (["t", [], {}, "extra"], "at most 3 elements"),
        (["t", 1], "needs [tag, time, record]"),
        (["t", b"\xc1"], "do not decode"),
        (["t", packed([1, {"a": 1}])[:-1]], "middle of an event"),
        (["t", b"not gzip", {"compressed": "gzip"}], "do not inflate"),
        (["t", gzip.compress(b"x" * 100)[:-8], {"compressed": "gzip"}], "cut short"),
        (["t", b"x", {"compressed": "lz4"}], "unsupported compression"),
    ],
)
def test_protocol_errors(message: Any, error: str) -> None:
    with pytest.raises(fp.ProtocolError, match=error.replace("[", r"\[").replace("]", r"\]")):
        roundtrip(message)


def test_compression_bomb_is_refused() -> None:
    bomb = gzip.compress(b"\x00" * (4 * 1024 * 1024))
    with pytest.raises(fp.ProtocolError, match="expand past"):
        roundtrip(["t", bomb, {"compressed": "gzip"}])
    with pytest.raises(fp.ProtocolError, match="expand past"):
        roundtrip(["t", zstandard.ZstdCompressor().compress(b"\x00" * (4 * 1024 * 1024)), {"compressed": "zstd"}])


def test_ack_encoding() -> None:
    data = fp.ack(["a", "b"])
    unpacker = msgpack.Unpacker()
    unpacker.feed(data)
    assert list(unpacker) == [{"ack": "a"}, {"ack": "b"}]


# -- handshake ----------------------------------------------------------------------------------------------


def sha512(*parts: str | bytes) -> str:
    return hashlib.sha512(b"".join(p.encode() if isinstance(p, str) else p for p in parts)).hexdigest()


def ping(key: str, nonce: bytes, salt: str = "s4lt", user: str = "", password: str = "", auth: bytes = b"") -> list:
    digest = sha512(auth, user, password) if user else ""
    return ["PING", "client-1", salt, sha512(salt, "client-1", nonce, key), user, digest]


def decode_pong(data: bytes) -> list:
    return msgpack.unpackb(data, raw=False)


def test_helo_shape() -> None:
    message = msgpack.unpackb(fp.helo(b"n" * 16, b""), raw=False)
    assert message == ["HELO", {"nonce": b"n" * 16, "auth": b"", "keepalive": True}]


def test_valid_ping_gets_a_pong_the_client_can_check() -> None:
    creds = fp.Credentials("secret", "collector-1", {})
    nonce = b"\x01" * 16
    pong, client, reason = fp.check_ping(ping("secret", nonce), nonce, b"", creds)
    assert (client, reason) == ("client-1", "")
    assert decode_pong(pong) == ["PONG", True, "", "collector-1", sha512("s4lt", "collector-1", nonce, "secret")]


def test_wrong_key_and_wrong_user_are_refused() -> None:
    nonce = b"\x02" * 16
    pong, _, reason = fp.check_ping(ping("guess", nonce), nonce, b"", fp.Credentials("secret", "c", {}))
    assert reason == "shared key mismatch"
    assert decode_pong(pong) == ["PONG", False, "shared key mismatch", "c", ""]
    creds = fp.Credentials("secret", "c", {"bit": "pw"})
    auth = b"\x03" * 16
    _, _, reason = fp.check_ping(ping("secret", nonce, user="bit", password="pw", auth=auth), nonce, auth, creds)
    assert reason == ""
    for user, password in (("bit", "bad"), ("nobody", "pw"), ("", "")):
        message = ping("secret", nonce, user=user, password=password, auth=auth)
        assert fp.check_ping(message, nonce, auth, creds)[2] == "username/password mismatch"


@pytest.mark.parametrize("message", [["HELO", {}], ["PING", "h"], ["PING", 1, "s", "d", "", ""], "PING"])
def test_malformed_ping(message: Any) -> None:
    with pytest.raises(fp.ProtocolError):
        fp.check_ping(message, b"n", b"", fp.Credentials("k", "c", {}))


# -- fuzzing ---------------------------------------------------------------------------------------------------

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_ever_raise_protocol_errors(data: bytes) -> None:
    unpacker = fp.make_unpacker(4096)
    dec = decoder(max_bytes=4096)
    try:
        unpacker.feed(data)
        for message in unpacker:
            dec.decode(message, 0)
    except (fp.ProtocolError, ValueError, TypeError, msgpack.UnpackException):
        pass  # the input closes the connection for these (TypeError: a map keyed by a map)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tag=st.text(max_size=6) | msgpack_values,
    second=msgpack_values | st.just(T) | st.binary(max_size=64),
    rest=st.lists(msgpack_values, max_size=3),
)
def test_arbitrary_messages_decode_or_raise_protocol_error(tag: Any, second: Any, rest: list[Any]) -> None:
    data = msgpack.packb([tag, second, *rest], use_bin_type=True)
    try:
        decoded = decoder(max_bytes=4096).decode(unpack(data), len(data))
    except fp.ProtocolError:
        return
    assert all(isinstance(r["timestamp"], float) for r in decoded.records)
    assert all(r["tag"] == tag for r in decoded.records)


@settings(max_examples=120, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.dictionaries(st.text(max_size=5), msgpack_values, max_size=4)),
        max_size=10,
    ),
    compress=st.sampled_from([None, "gzip", "zstd"]),
    cuts=st.lists(st.integers(0, 10_000), max_size=5),
)
def test_packed_chunks_survive_any_read_boundaries(
    events: list[tuple[int, dict[str, Any]]], compress: str | None, cuts: list[int]
) -> None:
    entries = packed(*([t, dict(r)] for t, r in events))
    if compress == "gzip":
        entries = gzip.compress(entries)
    elif compress == "zstd":
        entries = zstandard.ZstdCompressor().compress(entries)
    option = {"chunk": "c", **({"compressed": compress} if compress else {})}
    stream = msgpack.packb(["t", entries, option], use_bin_type=True) * 2
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    unpacker = fp.make_unpacker(LIMIT)
    dec = decoder(key=None)
    got: list[fp.Decoded] = []
    for a, b in itertools.pairwise(points):
        unpacker.feed(stream[a:b])
        got.extend(dec.decode(m, 0) for m in unpacker)
    assert len(got) == 2
    for decoded in got:
        assert decoded.chunk == "c" and decoded.invalid == 0
        assert [r["timestamp"] for r in decoded.records] == [float(t) for t, _ in events]


def test_packed_entries_are_decoded_in_steps_and_one_event_is_bounded_by_max_values_bytes() -> None:
    dec = fp.EventDecoder(LIMIT, "tag", "log", max_values=1000)
    packed = b"".join(msgpack.packb([1764176400 + i, {"log": f"event {i} " + "p" * 90}]) for i in range(10_000))
    chunk, pieces = dec.pieces(["t", packed, {"chunk": "c"}], len(packed))
    got = list(pieces)
    assert chunk == "c" and len(got) > 1
    assert [p.chunk for p in got] == [None] * (len(got) - 1) + ["c"]  # the chunk is named with the last piece
    assert sum(p.nbytes for p in got) == len(packed)
    assert [r["message"] for p in got for r in p.records] == [f"event {i} " + "p" * 90 for i in range(10_000)]
    # One event longer than max_values bytes (so it could decode to more values): refused, never decoded whole.
    _, pieces = dec.pieces(["t", msgpack.packb([1, {"log": [0] * 2000}]), None], 0)
    with pytest.raises(fp.TooLarge):
        list(pieces)
