"""The docker and cri line formats on files shaped as the runtimes write them (see container_runtimes.py)."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from collector_plugins.inputs.file.container_formats import FORMATS, TOO_LONG, CriFormat, DockerFormat
from collector_plugins.inputs.file.line_formats import FormatState, LineFormat, ParsedLines
from tests.plugins.container_runtimes import cri_lines, docker_entry, docker_json_lines, go_rfc3339nano, offsets

T0_NS = 1_795_687_200_000_000_000
T0 = T0_NS / 1e9


def parse_all(fmt: LineFormat, lines: list[bytes], chunk: int = 1000) -> tuple[ParsedLines, FormatState]:
    """Parse `lines` in chunks of `chunk` lines, then flush; everything emitted, with its start offsets."""
    state = fmt.new_state()
    out = ParsedLines([], [])
    position = 0
    for i in range(0, len(lines), chunk):
        block = lines[i : i + chunk]
        parsed = fmt.parse(state, block, position)
        out.records.extend(parsed.records)
        out.starts.extend(parsed.starts)
        position += sum(len(line) + 1 for line in block)
    flushed = fmt.flush(state)
    out.records.extend(flushed.records)
    out.starts.extend(flushed.starts)
    return out, state


def messages(records: list[dict[str, Any]], stream: str) -> list[str]:
    return [r["message"] for r in records if r.get("stream") == stream]


FORTY_KIB = (b"0123456789abcdef" * 2560)[: 40 * 1024]


def test_registry() -> None:
    assert dict(FORMATS) == {"docker": DockerFormat, "cri": CriFormat}
    assert DockerFormat.name == "docker" and CriFormat.name == "cri"
    with pytest.raises(ValueError, match="max_message_bytes"):
        CriFormat(max_message_bytes=0)


# ------------------------------------------------------------------ docker


def test_docker_40kib_line_is_split_16_16_8_and_joined_back() -> None:
    lines = docker_json_lines([("stdout", b"before\n" + FORTY_KIB + b"\nafter\n")])
    entries = [orjson.loads(line) for line in lines]
    # What docker wrote: 16 KiB, 16 KiB, 8 KiB + "\n", all three parts with the first part's time.
    assert [len(e["log"]) for e in entries] == [7, 16384, 16384, 8193, 6]
    assert entries[1]["time"] == entries[2]["time"] == entries[3]["time"]
    assert not entries[1]["log"].endswith("\n") and entries[3]["log"].endswith("\n")

    out, state = parse_all(DockerFormat(), lines)
    assert messages(out.records, "stdout") == ["before", FORTY_KIB.decode(), "after"]
    assert out.records[1]["timestamp"] == pytest.approx(T0 + 3e-6, abs=1e-6), "the first part's time"
    starts = list(offsets(lines))
    assert out.starts == [starts[0], starts[1], starts[4]]
    assert not state.errors and state.held_from is None


def test_docker_interleaved_partials_are_joined_per_stream() -> None:
    long_out, long_err = b"o" * 20000, b"e" * 17000
    writes = [
        ("stdout", long_out[:16384]),
        ("stderr", long_err[:16384]),
        ("stdout", b""),
        ("stderr", long_err[16384:] + b"\n"),
        ("stdout", long_out[16384:] + b"\nshort\n"),
        ("stderr", b"err2\n"),
    ]
    lines = docker_json_lines(writes)
    streams = [orjson.loads(line)["stream"] for line in lines]
    assert streams == ["stdout", "stderr", "stderr", "stdout", "stdout", "stderr"]
    for chunk in (1, 2, 1000):
        out, state = parse_all(DockerFormat(), lines, chunk)
        assert messages(out.records, "stdout") == [long_out.decode(), "short"]
        assert messages(out.records, "stderr") == [long_err.decode(), "err2"]
        assert not any(r.get("partial") for r in out.records)
        starts = list(offsets(lines))
        # Records in the order their lines complete, each starting where its first part does.
        assert out.starts == [starts[1], starts[0], starts[4], starts[5]]
        assert not state.errors


def test_docker_go_escapes_crlf_attrs_and_fractions() -> None:
    text = b'<a href="x">&amp;</a>\t\x01 caf\xc3\xa9 \xe2\x80\xa8 \xff'
    lines = [
        docker_entry(text + b"\n", "stdout", T0_NS),
        docker_entry(b"tty line\r\n", "stdout", T0_NS + 100_000_000),
        docker_entry(b"with attrs\n", "stderr", T0_NS, attrs='{"tag":"web","env":"prod"}'),
        b'{"log":"crlf file\\n","stream":"stdout","time":"2026-11-26T10:00:00Z"}\r',
    ]
    assert b'\\u003ca href=\\"x\\"\\u003e\\u0026amp;' in lines[0] and b"\\ufffd" in lines[0]
    out, state = parse_all(DockerFormat(), lines)
    first, tty, tagged, crlf = out.records
    assert first["message"] == '<a href="x">&amp;</a>\t\x01 café \u2028 \ufffd'
    assert tty == {"timestamp": T0 + 0.1, "message": "tty line", "stream": "stdout"}
    assert tagged["attrs"] == {"tag": "web", "env": "prod"} and tagged["stream"] == "stderr"
    assert crlf["message"] == "crlf file" and crlf["timestamp"] == T0
    assert go_rfc3339nano(T0_NS + 100_000_000) == "2026-11-26T10:00:00.1Z"
    assert not state.errors


def test_docker_invalid_utf8_in_the_file_is_replaced_not_rejected() -> None:
    line = b'{"log":"bad \xff\xfe bytes\\n","stream":"stdout","time":"2026-11-26T10:00:00Z"}'
    out, state = parse_all(DockerFormat(), [line])
    assert out.records[0]["message"] == "bad \ufffd\ufffd bytes" and not state.errors


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"log":"x\\n","stream":"stdout","time":"2026-11-26T10:00:00Z"', "invalid JSON"),
        (b"plain text \xff", "invalid JSON"),
        (b"", "invalid JSON"),
        (b'["log"]', "not a JSON object"),
        (b'{"stream":"stdout","time":"2026-11-26T10:00:00Z"}', "missing log, stream or time"),
        (b'{"log":"x\\n","stream":1,"time":"2026-11-26T10:00:00Z"}', "missing log, stream or time"),
        (b'{"log":"x\\n","stream":"stdout"}', "missing log, stream or time"),
        (b'{"log":"x\\n","stream":"stdout","time":"yesterday"}', "invalid time"),
        (b'{"log":"x","stream":"stdin","time":"2026-11-26T10:00:00Z"}', "unknown stream"),
        (b'{"log":"x\\n","stream":"stdout","time":"2026-11-26T10:00:00"}', "invalid time"),
    ],
)
def test_docker_bad_lines_are_kept_with_the_reason(line: bytes, reason: str) -> None:
    good = docker_entry(b"ok\n", "stdout", T0_NS)
    before = time.time()
    out, state = parse_all(DockerFormat(), [good, line, good])
    assert [r["message"] for r in out.records] == ["ok", line.decode("utf-8", "replace"), "ok"]
    bad = out.records[1]
    assert bad["parse_error"] == reason and "stream" not in bad and bad["timestamp"] >= before
    assert out.starts == list(offsets([good, line, good]))
    assert state.errors == {reason: 1}


def test_docker_stream_end_without_newline_is_flushed_as_partial() -> None:
    lines = docker_json_lines([("stdout", b"done\nno newline at exit")])
    fmt = DockerFormat()
    state = fmt.new_state()
    parsed = fmt.parse(state, lines, 0)
    assert [r["message"] for r in parsed.records] == ["done"]
    assert state.held_from == len(lines[0]) + 1
    flushed = fmt.flush(state)
    assert flushed.records == [
        {"timestamp": pytest.approx(T0 + 3e-6), "message": "no newline at exit", "stream": "stdout", "partial": True}
    ]
    assert flushed.starts == [len(lines[0]) + 1]
    assert state.held_from is None and fmt.flush(state) == ParsedLines([], [])


# ------------------------------------------------------------------ cri


def test_cri_partial_lines_p_p_f_are_joined() -> None:
    lines = cri_lines([("stdout", b"before\n" + FORTY_KIB + b"\nafter\n")])
    assert [line.split(b" ", 3)[2] for line in lines] == [b"F", b"P", b"P", b"F", b"F"]
    assert [len(line.split(b" ", 3)[3]) for line in lines] == [6, 16384, 16384, 8192, 5]
    out, state = parse_all(CriFormat(), lines)
    assert messages(out.records, "stdout") == ["before", FORTY_KIB.decode(), "after"]
    first_part_time = lines[1].split(b" ", 1)[0].decode()
    assert out.records[1]["timestamp"] == pytest.approx(T0 + 3e-6, abs=1e-7) and first_part_time.endswith(".000003Z")
    starts = list(offsets(lines))
    assert out.starts == [starts[0], starts[1], starts[4]]
    assert not state.errors and state.held_from is None


def test_cri_interleaved_streams_offsets_crlf_and_multibyte_cut() -> None:
    # A 3-byte character straddles the 16 KiB cut: joined back before decoding, it survives.
    straddle = b"x" * 16383 + "€".encode() + b"tail"
    writes = [
        ("stdout", straddle[:16384]),
        ("stderr", b"E" * 16500),
        ("stdout", straddle[16384:] + b"\r\n"),
        ("stderr", b"\nerr line\r\n"),
        ("stdout", b"\xff\xfe invalid utf-8\n"),
    ]
    lines = cri_lines(writes, offset_minutes=60)
    assert lines[0].split(b" ", 1)[0].endswith(b"+01:00")
    out, state = parse_all(CriFormat(), lines, chunk=1)
    assert messages(out.records, "stdout") == ["x" * 16383 + "€tail", "\ufffd\ufffd invalid utf-8"]
    assert messages(out.records, "stderr") == ["E" * 16500, "err line"]
    # The stdout line completes first; its time is that of its first part, the 2nd line written (offset applied).
    assert lines[1].startswith(b"2026-11-26T11:00:00.000003+01:00 stdout P ")
    assert out.records[0]["stream"] == "stdout" and out.records[0]["timestamp"] == pytest.approx(T0 + 3e-6, abs=1e-7)
    assert not state.errors


def test_cri_empty_lines_tags_and_bad_lines() -> None:
    stamp = b"2026-11-26T10:00:00.5Z"
    lines = [
        stamp + b" stdout F ",  # containerd writes an empty line like this
        stamp + b" stdout F",  # and some writers without the last space
        stamp + b" stderr F:x:y tagged",  # further tags are allowed
        stamp + b" stdout P:x part ",
        stamp + b" stdout F one",
        stamp + b" stdin F wrong stream",
        stamp + b" stdout X bad tag",
        b"2026-11-26T10:00:00 stdout F no zone",
        stamp + b" stdout",
        b"",
        b"\xff\xfe\xfd",
    ]
    out, state = parse_all(CriFormat(), lines)
    assert [r["message"] for r in out.records[:4]] == ["", "", "tagged", "part one"]
    assert all(r["timestamp"] == T0 + 0.5 for r in out.records[:4])
    bad = out.records[4:]
    assert [r["parse_error"] for r in bad] == [
        "unknown stream",
        "unknown tag",
        "invalid time",
        "missing time, stream or tag",
        "missing time, stream or tag",
        "missing time, stream or tag",
    ]
    assert bad[-1]["message"] == "\ufffd\ufffd\ufffd"
    assert sum(state.errors.values()) == 6


def test_held_from_and_held_since_follow_the_oldest_held_part() -> None:
    lines = cri_lines([("stdout", b"a" * 16385), ("stderr", b"b" * 20000), ("stdout", b"\n"), ("stderr", b"\n")])
    assert [line.split(b" ", 3)[1:3] for line in lines] == [
        [b"stdout", b"P"],
        [b"stderr", b"P"],
        [b"stdout", b"F"],
        [b"stderr", b"F"],
    ]
    starts = list(offsets(lines))
    fmt = CriFormat()
    state = fmt.new_state()
    before = time.monotonic()
    assert fmt.parse(state, lines[:1], 0).records == []
    assert state.held_from == 0 and before <= state.held_since <= time.monotonic()
    since = state.held_since
    assert fmt.parse(state, lines[1:2], starts[1]).records == []
    assert state.held_from == 0 and state.held_since == since, "still the stdout part: the oldest"
    parsed = fmt.parse(state, lines[2:3], starts[2])
    assert parsed.records[0]["message"] == "a" * 16385 and parsed.starts == [0]
    assert state.held_from == starts[1] and state.held_since >= since, "now the stderr part"
    parsed = fmt.parse(state, lines[3:], starts[3])
    assert parsed.starts == [starts[1]] and state.held_from is None


def test_reading_again_from_held_from_gives_the_whole_message() -> None:
    """What a restart does: the reader resumes at held_from with a fresh state."""
    lines = cri_lines([("stdout", b"first\n" + b"z" * 40000 + b"\n")])
    fmt = CriFormat()
    state = fmt.new_state()
    fmt.parse(state, lines[:3], 0)  # first, P, P
    resume = state.held_from
    assert resume == len(lines[0]) + 1
    index = list(offsets(lines)).index(resume)
    again, _ = parse_all(CriFormat(), lines[index:])
    assert [r["message"] for r in again.records] == ["z" * 40000]


@pytest.mark.parametrize("fmt_class", [DockerFormat, CriFormat])
def test_message_over_the_cap_is_emitted_in_pieces_nothing_lost(fmt_class: type[DockerFormat]) -> None:
    writer = docker_json_lines if fmt_class is DockerFormat else cri_lines
    text = bytes(ord("a") + i % 26 for i in range(70000))
    lines = writer([("stdout", text + b"\nnext\n")])
    out, state = parse_all(fmt_class(max_message_bytes=30000), lines)
    pieces = out.records[:-1]
    assert "".join(r["message"] for r in pieces) == text.decode()
    assert [len(r["message"]) for r in pieces] == [30000, 30000, 10000]
    assert [(r.get("truncated"), r.get("continuation")) for r in pieces] == [
        (True, None),
        (True, True),
        (None, True),
    ]
    assert len({r["timestamp"] for r in pieces}) == 1
    assert out.records[-1]["message"] == "next" and "truncated" not in out.records[-1]
    assert state.errors == {TOO_LONG: 1}
    assert out.starts == sorted(out.starts), "each piece starts at or after the one before"


def test_cap_on_a_single_whole_line_and_on_a_held_line_flushed() -> None:
    fmt = CriFormat(max_message_bytes=4)
    out, state = parse_all(fmt, [b"2026-11-26T10:00:00Z stdout F abcdefghij", b"2026-11-26T10:00:00Z stderr P 123456"])
    assert [(r["message"], r.get("truncated"), r.get("continuation"), r.get("partial")) for r in out.records] == [
        ("abcd", True, None, None),
        ("efgh", True, True, None),
        ("ij", None, True, None),
        ("1234", True, None, None),
        ("56", None, True, True),
    ]
    assert state.errors == {TOO_LONG: 2}


def test_cut_never_splits_a_utf8_character() -> None:
    fmt = CriFormat(max_message_bytes=5)
    out, _ = parse_all(fmt, ["2026-11-26T10:00:00Z stdout F ab€€€".encode()])
    assert [r["message"] for r in out.records] == ["ab€", "€", "€"]
