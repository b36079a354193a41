"""Newline and octet-counting framing: limits, errors, and that chunk boundaries never change the result."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from collector_plugins.common.framing import LineSplitter, OctetCountingFramer


def feed_all(framer: LineSplitter | OctetCountingFramer, chunks: list[bytes]) -> tuple[list[bytes], list[int]]:
    frames: list[bytes] = []
    cut: list[int] = []
    for chunk in [*chunks, None]:
        got, cuts = framer.feed(chunk) if chunk is not None else framer.finish()
        cut.extend(len(frames) + i for i in cuts)
        frames.extend(got)
    return frames, cut


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


# -- newline ----------------------------------------------------------------------------------------------


def test_lines_crlf_and_tail() -> None:
    frames, cut = feed_all(LineSplitter(100), [b"a\r\nb\n", b"\nc", b"d\r"])
    assert (frames, cut) == ([b"a", b"b", b"", b"cd"], [])


def test_long_lines_are_cut_and_their_rest_skipped() -> None:
    frames, cut = feed_all(LineSplitter(4), [b"12", b"345678", b"90\nok\n", b"abcdefgh\nxy"])
    assert (frames, cut) == ([b"1234", b"ok", b"abcd", b"xy"], [0, 2])


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")), max_size=20),
    limit=st.integers(1, 40),
    cuts=st.lists(st.integers(0, 2000), max_size=10),
)
def test_line_chunking_does_not_matter(lines: list[bytes], limit: int, cuts: list[int]) -> None:
    data = b"".join(line + b"\n" for line in lines)
    frames, cut = feed_all(LineSplitter(limit), chunked(data, cuts))
    assert frames == [line[:limit] for line in lines]
    assert cut == [i for i, line in enumerate(lines) if len(line) > limit]


# -- octet counting ---------------------------------------------------------------------------------------


def test_octet_counted_frames() -> None:
    framer = OctetCountingFramer(100)
    frames, cut = feed_all(framer, [b"5 hello3 a", b"b", b"c0 12 with\nnewline"])
    assert (frames, cut) == ([b"hello", b"abc", b"with\nnewline"], [])
    assert framer.error == ""


def test_oversized_frame_is_cut_and_the_rest_skipped() -> None:
    frames, cut = feed_all(OctetCountingFramer(4), [b"10 abcd", b"efghij2 ok"])
    assert (frames, cut) == ([b"abcd", b"ok"], [0])


def test_a_frame_cut_short_by_the_end_of_stream_is_kept_and_marked() -> None:
    assert feed_all(OctetCountingFramer(100), [b"3 abc10 parti"]) == ([b"abc", b"parti"], [1])


def test_lost_framing_stops_the_stream_after_the_good_frames() -> None:
    framer = OctetCountingFramer(100)
    frames, cuts = framer.feed(b"3 abc<13>oops this is not counted")
    assert frames == [b"abc"] and cuts == ()
    assert "expected an octet count" in framer.error
    assert framer.feed(b"5 hello") == ([], ())
    for bad in (b"01 x", b"12345678901 x", b"x"):
        framer = OctetCountingFramer(100)
        framer.feed(bad)
        assert framer.error, bad


@settings(max_examples=300, deadline=None)
@given(
    messages=st.lists(st.binary(min_size=1, max_size=60), max_size=20),
    limit=st.integers(1, 80),
    cuts=st.lists(st.integers(0, 3000), max_size=10),
)
def test_octet_chunking_does_not_matter(messages: list[bytes], limit: int, cuts: list[int]) -> None:
    data = b"".join(b"%d %s" % (len(m), m) for m in messages)
    framer = OctetCountingFramer(limit)
    frames, cut = feed_all(framer, chunked(data, cuts))
    assert framer.error == ""
    assert frames == [m[:limit] for m in messages]
    assert cut == [i for i, m in enumerate(messages) if len(m) > limit]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=50), max_size=8), st.integers(1, 64))
def test_arbitrary_bytes_never_raise_and_stay_bounded(chunks: list[bytes], limit: int) -> None:
    for framer in (LineSplitter(limit), OctetCountingFramer(limit)):
        for chunk in chunks:
            frames, cuts = framer.feed(chunk)
            assert all(len(f) <= limit for f in frames)
            assert all(0 <= i < len(frames) for i in cuts)
            assert framer.pending <= limit + 11
        framer.finish()
