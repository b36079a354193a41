"""The X-Ray datagram parser: valid documents kept byte for byte, every bad datagram a counted reason."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector_plugins.inputs.xray import datagram
from collector_plugins.inputs.xray.address import parse_daemon_address, resolve_daemon_address
from collector_plugins.inputs.xray.datagram import HEADER, REASONS, parse_datagram

TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"
SEGMENT = {
    "trace_id": TRACE_ID,
    "id": "53995c3f42cd8ad8",
    "name": "checkout",
    "start_time": 1478293361.271,
    "end_time": 1478293361.449,
}


def doc(**changes: object) -> bytes:
    body = {**SEGMENT, **changes}
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


def test_document_kept_byte_for_byte_with_fields_copied() -> None:
    # Spacing, key order, unicode escapes and number spelling must survive: the output sends `raw`.
    raw = (
        b'{ "name" : "caf\\u00e9 \xc3\xa9",  "id":"53995c3f42cd8ad8","trace_id":"' + TRACE_ID.encode() + b'",'
        b'"start_time":1.478293361271E9,"end_time":1478293361.449 ,"annotations":{"k":[1,2]}}'
    )
    record = parse_datagram(HEADER + raw, 12.5)
    assert isinstance(record, dict)
    assert record["raw"] == raw
    assert record["trace_id"] == TRACE_ID
    assert record["id"] == "53995c3f42cd8ad8"
    assert record["name"] == "café é"
    assert record["start_time"] == 1478293361.271
    assert record["end_time"] == 1478293361.449
    assert record["timestamp"] == 12.5
    assert "in_progress" not in record and "parent_id" not in record


def test_in_progress_and_streamed_subsegment() -> None:
    in_progress = parse_datagram(HEADER + doc(end_time=None, in_progress=True), 0.0)
    assert isinstance(in_progress, dict) and in_progress["in_progress"] is True and "end_time" not in in_progress
    sub = parse_datagram(HEADER + doc(type="subsegment", parent_id="defdfd9912dc5a56", id="0c18ebb2c4ab0b42"), 0.0)
    assert isinstance(sub, dict)
    assert sub["type"] == "subsegment" and sub["parent_id"] == "defdfd9912dc5a56"


def test_header_spelled_differently_is_accepted_like_the_daemon() -> None:
    for header in (b'{"format": "json", "version": 1}', b'{"version":1,"format":"json"}'):
        assert isinstance(parse_datagram(header + b"\n" + doc(), 0.0), dict)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", datagram.BAD_HEADER),
        (doc(), datagram.BAD_HEADER),  # no header line at all
        (b'{"format":"json","version":2}\n' + doc(), datagram.BAD_HEADER),
        (b'{"format":"xml","version":1}\n' + doc(), datagram.BAD_HEADER),
        (b'{"format":"json","version":"1"}\n' + doc(), datagram.BAD_HEADER),
        (b'{"format":"json","version":true}\n' + doc(), datagram.BAD_HEADER),
        (b'{"format":"json"\n' + doc(), datagram.BAD_HEADER),  # truncated header
        (b'{"format":"json","version":1}', datagram.BAD_HEADER),  # header without its newline
        (HEADER, datagram.EMPTY_DOCUMENT),
        (HEADER + b'{"trace_id": "1-5759e988-bd8', datagram.INVALID_JSON),  # truncated document
        (HEADER + b'{"name": "\xff\xfe"}', datagram.INVALID_UTF8),
        (HEADER + b'{"name": "\xed\xa0\x80"}', datagram.INVALID_UTF8),  # an encoded surrogate
        (HEADER + b"[1, 2]", datagram.NOT_AN_OBJECT),
        (HEADER + b'"segment"', datagram.NOT_AN_OBJECT),
        (HEADER + doc(trace_id=None), datagram.INVALID_TRACE_ID),
        (HEADER + doc(trace_id="5759e988-bd862e3fe1be46a994272793"), datagram.INVALID_TRACE_ID),
        (HEADER + doc(trace_id="1-5759e988-bd862e3fe1be46a99427279"), datagram.INVALID_TRACE_ID),
        (HEADER + doc(trace_id="1-5759e988-bd862e3fe1be46a99427279z"), datagram.INVALID_TRACE_ID),
        (HEADER + doc(id="53995c3f42cd8ad"), datagram.INVALID_ID),
        (HEADER + doc(id=12345), datagram.INVALID_ID),
        (HEADER + doc(name=""), datagram.MISSING_NAME),
        (HEADER + doc(name=None), datagram.MISSING_NAME),
        (HEADER + doc(start_time="1478293361.271"), datagram.INVALID_START_TIME),
        (HEADER + doc(start_time=True), datagram.INVALID_START_TIME),
        (HEADER + doc(end_time=None), datagram.INVALID_END_TIME),
        (HEADER + doc(end_time=None, in_progress=False), datagram.INVALID_END_TIME),
        (HEADER + doc(end_time="later"), datagram.INVALID_END_TIME),
        (HEADER + doc(type="subsegment"), datagram.INVALID_PARENT_ID),
        (HEADER + doc(parent_id="nothex0123456789"), datagram.INVALID_PARENT_ID),
    ],
)
def test_rejections_name_their_reason(data: bytes, reason: str) -> None:
    assert parse_datagram(data, 0.0) == reason


def test_document_size_limit_is_exact() -> None:
    base = doc(annotations={"pad": ""})
    pad = 1024 - len(base)
    exact = doc(annotations={"pad": "x" * pad})
    assert len(exact) == 1024
    assert isinstance(parse_datagram(HEADER + exact, 0.0, max_document_bytes=1024), dict)
    over = doc(annotations={"pad": "x" * (pad + 1)})
    assert parse_datagram(HEADER + over, 0.0, max_document_bytes=1024) == datagram.TOO_LARGE


# --------------------------------------------------------------------------- fuzzing

_valid = HEADER + doc()


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    """Datagrams near the valid shape: cut, flipped, spliced, padded, or random bytes."""
    kind = draw(st.sampled_from(["random", "truncate", "flip", "splice", "huge", "header_only"]))
    if kind == "random":
        return draw(st.binary(max_size=2048))
    if kind == "truncate":
        return _valid[: draw(st.integers(0, len(_valid)))]
    if kind == "flip":
        data = bytearray(_valid)
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "splice":
        cut = draw(st.integers(0, len(_valid)))
        return _valid[:cut] + draw(st.binary(max_size=64)) + _valid[cut:]
    if kind == "huge":
        return HEADER + b'{"name":"' + b"x" * draw(st.integers(65_000, 70_000)) + b'"}'
    return draw(st.sampled_from([HEADER, HEADER[:-1], b"\n", b"\n" + doc()]))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mangled())
def test_fuzz_never_raises_and_every_outcome_is_a_record_or_a_reason(data: bytes) -> None:
    result = parse_datagram(data, 1.0)
    if isinstance(result, str):
        assert result in REASONS
        return
    # Whatever got through is a complete, valid record whose raw bytes parse to what it claims.
    parsed = orjson.loads(result["raw"])
    assert parsed["trace_id"] == result["trace_id"] and parsed["id"] == result["id"]
    assert data.endswith(result["raw"])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_text_documents(text: str) -> None:
    result = parse_datagram(HEADER + text.encode("utf-8", "surrogatepass"), 0.0)
    assert isinstance(result, dict) or result in REASONS


# --------------------------------------------------------------------------- addresses


def test_address_forms() -> None:
    both = parse_daemon_address("127.0.0.1:2000")
    assert (both.udp_host, both.udp_port, both.tcp_host, both.tcp_port) == ("127.0.0.1", 2000, "127.0.0.1", 2000)
    split = parse_daemon_address("tcp:127.0.0.1:2001 udp:0.0.0.0:2000")
    assert (split.udp_host, split.udp_port, split.tcp_host, split.tcp_port) == ("0.0.0.0", 2000, "127.0.0.1", 2001)
    v6 = parse_daemon_address("udp:[::1]:2000 tcp:[::1]:2001")
    assert (v6.udp_host, v6.tcp_port) == ("::1", 2001)
    assert parse_daemon_address("[::1]:2000").tcp_host == "::1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "127.0.0.1",
        "127.0.0.1:",
        ":2000",
        "127.0.0.1:70000",
        "127.0.0.1:0",
        "udp:127.0.0.1:2000",
        "udp:127.0.0.1:2000 udp:127.0.0.1:2001",
        "http:a:1 tcp:b:2",
        "a:1 b:2 c:3",
        "::1:2000",
        "[::1]2000",
    ],
)
def test_bad_addresses_are_rejected_with_the_forms_named(text: str) -> None:
    with pytest.raises(ValueError, match="X-Ray daemon address"):
        parse_daemon_address(text)


def test_environment_is_used_when_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", "tcp:127.0.0.1:3001 udp:127.0.0.1:3000")
    address, source = resolve_daemon_address(None)
    assert (address.udp_port, address.tcp_port, source) == (3000, 3001, "AWS_XRAY_DAEMON_ADDRESS")
    assert resolve_daemon_address("127.0.0.1:4000")[0].udp_port == 4000  # the config wins
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", "nonsense")
    with pytest.raises(ValueError, match="AWS_XRAY_DAEMON_ADDRESS"):
        resolve_daemon_address(None)
    monkeypatch.delenv("AWS_XRAY_DAEMON_ADDRESS")
    assert resolve_daemon_address(None) == (parse_daemon_address("127.0.0.1:2000"), "default")
