"""Splitting a file's bytes into lines (chunk boundaries, long lines, encodings) and glob patterns."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector_plugins.inputs.file.codec import (
    INVALID_BYTES,
    cut_point,
    decode,
    file_codec,
    normalize_encoding,
    rfind_newline,
    split_lines,
)
from collector_plugins.inputs.file.config import FileInputConfig
from collector_plugins.inputs.file.globs import GlobSet, Pattern
from collector_plugins.inputs.file.identity import Fingerprint
from collector_plugins.inputs.file.lines import LineSplitter, Segment, lines_of
from collector_plugins.inputs.file.tailed import Counters, Shared, TailedFile

UTF8 = file_codec("utf-8")


def feed_all(splitter: LineSplitter, data: bytes, cuts: list[int]) -> list[Segment]:
    out, start = [], 0
    for cut in [*sorted(cuts), len(data)]:
        out.extend(splitter.feed(data[start:cut]))
        start = cut
    return out


def lines_from(segments: list[Segment], codec: object = UTF8) -> list[tuple[bytes, int, bool]]:
    out = []
    for segment in segments:
        lines, starts = lines_of(segment, codec)  # type: ignore[arg-type]
        out.extend((line, start, segment.truncated) for line, start in zip(lines, starts, strict=True))
    return out


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=10),
    tail=st.binary(max_size=10).map(lambda b: b.replace(b"\n", b"")),
)
def test_any_chunking_gives_the_same_lines_and_offsets(lines: list[bytes], cuts: list[int], tail: bytes) -> None:
    data = b"".join(line + b"\n" for line in lines) + tail
    splitter = LineSplitter(UTF8, 1000, 0)
    got = lines_from(feed_all(splitter, data, [c for c in cuts if c <= len(data)]))
    expected, offset = [], 0
    for line in lines:
        expected.append((line, offset, False))
        offset += len(line) + 1
    if data.startswith(codecs.BOM_UTF8) and expected:
        first, _, _ = expected[0]
        expected[0] = (first[3:], 3, False)
    assert got == expected
    assert splitter.safe_offset == (len(data) - len(tail) if tail else len(data))
    assert [(s.data, s.start) for s in splitter.flush()] == ([(tail, len(data) - len(tail))] if tail else [])
    assert splitter.safe_offset == len(data)


def tailed_file(**options: object) -> TailedFile:
    config = FileInputConfig(type="file", include=["/x/*.log"], **options)  # type: ignore[arg-type]
    shared = Shared(config, "h", Counters(), lambda reason, n: None, lambda tf: None, lambda tf: None)
    return TailedFile(shared, "/x/a.log", 1, 2, Fingerprint.of(b""), 0)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=60), max_size=20),
    cuts=st.lists(st.integers(min_value=0, max_value=1500), max_size=8),
    limit=st.integers(min_value=16, max_value=40),
    multiline=st.booleans(),
)
def test_long_lines_are_cut_and_their_tails_skipped(
    sizes: list[int], cuts: list[int], limit: int, multiline: bool
) -> None:
    lines = [bytes([65 + i % 26]) * size for i, size in enumerate(sizes)]
    data = b"".join(line + b"\n" for line in lines)
    options: dict[str, object] = {"max_line_bytes": limit}
    if multiline:  # the line path: every line a record of its own (each begins one)
        options["multiline"] = {"start": "", "timeout": "1h"}
    tf = tailed_file(**options)
    records, start = [], 0
    for cut in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
        records.extend(tf.process(data[start:cut], 0.0)[0])
        start = cut
    records.extend(tf.finish(0.0))
    assert [r["message"] for r in records] == [line[:limit].decode() for line in lines]
    assert [r.get("truncated", False) for r in records] == [len(line) > limit for line in lines]
    assert tf.shared.counters.truncated_lines == sum(len(line) > limit for line in lines)
    assert tf.commit_position == len(data)


def test_offset_stays_at_the_start_of_a_line_being_discarded() -> None:
    splitter = LineSplitter(UTF8, 16, 0)
    segments = splitter.feed(b"ok\n" + b"x" * 40)
    assert [(bytes(s.data), s.start, s.truncated) for s in segments] == [(b"ok", 0, False), (b"x" * 16, 3, True)]
    assert splitter.safe_offset == 3  # a restart reads the long line again, not its tail
    assert splitter.feed(b"yyy\nnext\n")[0].start == 47
    assert splitter.safe_offset == 52


def test_utf8_cut_keeps_whole_characters() -> None:
    line = "aé€😀".encode() * 4
    for limit in range(16, 40):
        head = line[: cut_point(line, limit, UTF8)]
        head.decode("utf-8")  # never a broken character
        assert limit - 3 <= len(head) <= limit


def test_utf16_newlines_only_on_code_unit_boundaries() -> None:
    codec = file_codec("utf-16", codecs.BOM_UTF16_LE)
    text = "\u0a41\u4100 x\nsecond\n"
    data = codecs.BOM_UTF16_LE + text.encode("utf-16-le")
    splitter = LineSplitter(codec, 1000, 0)
    got = lines_from(splitter.feed(data[:5]) + splitter.feed(data[5:]), codec)
    assert [decode(line, codec) for line, _, _ in got] == ["\u0a41\u4100 x", "second"]
    assert [start for _, start, _ in got] == [2, 2 + 2 * len("\u0a41\u4100 x\n")]
    assert rfind_newline(b"\x41\x0a\x00\x41", codec, 0) == -1
    assert split_lines(b"\x41\x0a\x00\x41\n\x00z\x00", codec, 0) == [b"\x41\x0a\x00\x41", b"z\x00"]


def test_big_endian_is_chosen_from_the_byte_order_mark() -> None:
    assert file_codec("utf-16", codecs.BOM_UTF16_BE).name == "utf-16-be"
    assert file_codec("utf-16", b"ab").name == "utf-16-le"
    assert file_codec("utf-32", codecs.BOM_UTF32_BE).newline == "\n".encode("utf-32-be")


def test_invalid_bytes_are_replaced_and_counted() -> None:
    before = INVALID_BYTES.count
    assert decode(b"a\xffb\xc3", UTF8) == "a\ufffdb\ufffd"
    assert INVALID_BYTES.count - before == 2


@pytest.mark.parametrize(
    ("name", "canonical"),
    [("UTF8", "utf-8"), ("utf-8-sig", "utf-8"), ("latin1", "iso8859-1"), ("UTF-16", "utf-16"), ("cp500", "cp500")],
)
def test_encoding_names(name: str, canonical: str) -> None:
    assert normalize_encoding(name) == canonical


def test_ebcdic_newline() -> None:
    codec = file_codec("cp500")
    splitter = LineSplitter(codec, 100, 0)
    data = "eins\nzwei\n".encode("cp500")
    assert [decode(line, codec) for line, _, _ in lines_from(splitter.feed(data), codec)] == ["eins", "zwei"]


# ----------------------------------------------------------------- globs


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("/var/log/*.log", "/var/log/a.log", True),
        ("/var/log/*.log", "/var/log/x/a.log", False),
        ("/var/log/**/*.log", "/var/log/a.log", True),
        ("/var/log/**/*.log", "/var/log/x/y/a.log", True),
        ("/var/log/**", "/var/log/x/y", True),
        ("/var/log/app-?.log", "/var/log/app-1.log", True),
        ("/var/log/app-[0-9].log", "/var/log/app-x.log", False),
        ("/var/log/app-[!0-9].log", "/var/log/app-x.log", True),
        ("/var/log/pods/*/*/*.log", "/var/log/pods/ns_p_u/c/0.log", True),
        ("/var/log/a+b(1).log", "/var/log/a+b(1).log", True),
    ],
)
def test_pattern_matching(pattern: str, path: str, matches: bool) -> None:
    assert Pattern.parse(pattern).matches(path) is matches


def test_pattern_base_and_depth() -> None:
    assert (Pattern.parse("/var/log/*/x/*.log").base, Pattern.parse("/var/log/*/x/*.log").depth) == ("/var/log", 3)
    assert Pattern.parse("/srv/**/a.log").depth is None
    assert Pattern.parse("/var/log/syslog").base == "/var/log"
    globs = GlobSet(["/var/log/*.log", "/var/log/app/**/*.log", "/srv/*/x.log"], [])
    assert globs.watch_roots() == [("/srv", True), ("/var/log", False), ("/var/log/app", True)]


def test_scan_walks_only_as_deep_as_needed(tmp_path: Path) -> None:
    for name in ("a.log", "b.txt", "d/c.log", "d/e/f.log"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    os.symlink(tmp_path / "a.log", tmp_path / "link.log")
    os.symlink(tmp_path / "missing", tmp_path / "dangling.log")
    assert sorted(GlobSet([f"{tmp_path}/*.log"], []).scan()) == [f"{tmp_path}/a.log", f"{tmp_path}/link.log"]
    deep = GlobSet([f"{tmp_path}/**/*.log"], ["c.log"]).scan()
    assert sorted(deep) == [f"{tmp_path}/a.log", f"{tmp_path}/d/e/f.log", f"{tmp_path}/link.log"]
    assert sorted(GlobSet([f"{tmp_path}/*/*.log"], []).scan()) == [f"{tmp_path}/d/c.log"]
