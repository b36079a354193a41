"""Fuzzing the docker and cri formats: nothing crashes, bad input is counted, good input comes back whole.

Every property also checks what the file input relies on to commit positions:
once a chunk is parsed, no record emitted later starts before that chunk's
`held_from` (or before the chunk's end when nothing is held).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector_plugins.inputs.file.container_formats import TOO_LONG, CriFormat, DockerFormat
from collector_plugins.inputs.file.line_formats import LineFormat
from tests.plugins.container_runtimes import cri_lines, docker_json_lines, offsets

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

streams = st.sampled_from(["stdout", "stderr"])
lines_of_bytes = st.lists(st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")), max_size=30)
chunk_sizes = st.integers(min_value=1, max_value=8)


def run(fmt: LineFormat, lines: list[bytes], chunk: int) -> list[tuple[int, dict[str, Any]]]:
    """(start, record) for everything parsed and flushed, checking the invariants along the way."""
    state = fmt.new_state()
    starts = set(offsets(lines))
    end = sum(len(line) + 1 for line in lines)
    out: list[tuple[int, dict[str, Any]]] = []
    floor = 0
    position = 0
    for i in range(0, len(lines), chunk):
        block = lines[i : i + chunk]
        parsed = fmt.parse(state, block, position)
        assert len(parsed.records) == len(parsed.starts)
        assert all(start >= floor for start in parsed.starts), "a record starts before a position already safe"
        out.extend(zip(parsed.starts, parsed.records, strict=True))
        position += sum(len(line) + 1 for line in block)
        floor = position if state.held_from is None else state.held_from
        assert state.held_from is None or state.held_from in starts
    flushed = fmt.flush(state)
    assert all(start >= floor for start in flushed.starts)
    out.extend(zip(flushed.starts, flushed.records, strict=True))
    assert state.held_from is None
    assert all(start in starts and start < end for start, _ in out)
    for _, record in out:
        assert isinstance(record["message"], str) and isinstance(record["timestamp"], float)
    bad = [r for _, r in out if "parse_error" in r]
    assert len(bad) == sum(n for reason, n in state.errors.items() if reason != TOO_LONG), "every bad line counted"
    return out


@FUZZ
@given(lines=lines_of_bytes, chunk=chunk_sizes, cap=st.integers(1, 64))
def test_any_bytes_never_crash_docker(lines: list[bytes], chunk: int, cap: int) -> None:
    run(DockerFormat(max_message_bytes=cap), lines, chunk)


@FUZZ
@given(lines=lines_of_bytes, chunk=chunk_sizes, cap=st.integers(1, 64))
def test_any_bytes_never_crash_cri(lines: list[bytes], chunk: int, cap: int) -> None:
    run(CriFormat(max_message_bytes=cap), lines, chunk)


def mutate(lines: list[bytes], edits: list[tuple[int, int, bytes]]) -> list[bytes]:
    """Damage real lines: replace a slice of a line by other bytes (no newline)."""
    damaged = list(lines)
    for index, cut, junk in edits:
        if damaged:
            line = damaged[index % len(damaged)]
            at = cut % (len(line) + 1)
            damaged[index % len(damaged)] = (line[:at] + junk + line[at + len(junk) :]).replace(b"\n", b"")
    return damaged


writes = st.lists(st.tuples(streams, st.binary(max_size=40)), max_size=12)
edits = st.lists(st.tuples(st.integers(0, 50), st.integers(0, 200), st.binary(min_size=1, max_size=6)), max_size=4)


@FUZZ
@given(writes=writes, edits=edits, chunk=chunk_sizes)
def test_damaged_docker_files_never_crash(writes: list[tuple[str, bytes]], edits: list[Any], chunk: int) -> None:
    run(DockerFormat(), mutate(docker_json_lines(writes, buffer_size=16), edits), chunk)


@FUZZ
@given(writes=writes, edits=edits, chunk=chunk_sizes)
def test_damaged_cri_files_never_crash(writes: list[tuple[str, bytes]], edits: list[Any], chunk: int) -> None:
    run(CriFormat(), mutate(cri_lines(writes, max_len=16), edits), chunk)


def expected_lines(writes: list[tuple[str, bytes]], stream: str, strip_cr: int) -> tuple[list[bytes], bytes]:
    """What a stream wrote, as complete lines (each losing up to `strip_cr` final `\\r`) and the unfinished rest."""
    data = b"".join(chunk for name, chunk in writes if name == stream)
    *complete, rest = data.split(b"\n")
    stripped = []
    for line in complete:
        for _ in range(strip_cr):
            if line.endswith(b"\r"):
                line = line[:-1]
        stripped.append(line)
    return stripped, rest


def joined_messages(records: list[dict[str, Any]], stream: str) -> tuple[list[str], str | None]:
    """Messages of one stream with pieces of over-long ones put back together, and the flushed partial."""
    whole: list[str] = []
    current: list[str] = []
    partial = None
    for record in records:
        if record.get("stream") != stream:
            continue
        current.append(record["message"])
        if record.get("partial"):
            partial = "".join(current)
            current = []
        elif not record.get("truncated"):
            whole.append("".join(current))
            current = []
    assert not current
    return whole, partial


@FUZZ
@given(writes=writes, chunk=chunk_sizes, max_len=st.integers(1, 24))
def test_cri_round_trip(writes: list[tuple[str, bytes]], chunk: int, max_len: int) -> None:
    lines = cri_lines(writes, max_len=max_len)
    out = run(CriFormat(), lines, chunk)
    records = [r for _, r in out]
    assert not any("parse_error" in r for r in records)
    for stream in ("stdout", "stderr"):
        # containerd drops the \r of \r\n, the format one more \r (TTY output).
        complete, rest = expected_lines(writes, stream, strip_cr=2)
        whole, partial = joined_messages(records, stream)
        assert whole == [line.decode("utf-8", "replace") for line in complete]
        assert partial == (rest.decode("utf-8", "replace") if rest else None)


ascii = st.binary(max_size=40).map(lambda data: bytes(c & 0x7F for c in data))
ascii_writes = st.lists(st.tuples(streams, ascii), max_size=12)


@FUZZ
@given(writes=ascii_writes, chunk=chunk_sizes, buffer_size=st.integers(1, 24), cap=st.integers(1, 100))
def test_docker_round_trip(writes: list[tuple[str, bytes]], chunk: int, buffer_size: int, cap: int) -> None:
    # ASCII: docker itself turns a character split at its buffer's edge into U+FFFD, nothing to get back.
    lines = docker_json_lines(writes, buffer_size=buffer_size)
    out = run(DockerFormat(max_message_bytes=cap), lines, chunk)
    records = [r for _, r in out]
    for stream in ("stdout", "stderr"):
        complete, rest = expected_lines(writes, stream, strip_cr=1)
        whole, partial = joined_messages(records, stream)
        assert whole == [line.decode() for line in complete]
        assert partial == (rest.decode() if rest else None)
    assert all(len(r["message"]) <= cap for r in records)


text_writes = st.lists(st.tuples(streams, st.text(max_size=30).map(str.encode)), max_size=12)


@FUZZ
@given(writes=text_writes, chunk=chunk_sizes, max_len=st.integers(1, 24), cap=st.integers(4, 60))
def test_cri_cap_splits_into_pieces_that_join_back(
    writes: list[tuple[str, bytes]], chunk: int, max_len: int, cap: int
) -> None:
    lines = cri_lines(writes, max_len=max_len)
    out = run(CriFormat(max_message_bytes=cap), lines, chunk)
    records = [r for _, r in out]
    for stream in ("stdout", "stderr"):
        complete, rest = expected_lines(writes, stream, strip_cr=2)
        whole, partial = joined_messages(records, stream)
        assert whole == [line.decode() for line in complete]
        assert partial == (rest.decode() if rest else None)
    assert all(len(r["message"].encode()) <= cap for r in records), "pieces fit and split no character"
