"""The multiline joiner: start / continuation patterns, limits, timeouts; fuzzed with hypothesis."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from collector_plugins.inputs.file.multiline import MultilineJoiner
from tests.plugins.file_input_support import Harness, append


def records(*messages: Any) -> list[dict[str, Any]]:
    return [{"timestamp": float(i), "message": m, "n": i} for i, m in enumerate(messages)]


def test_start_pattern_joins_stack_traces() -> None:
    joiner = MultilineJoiner(re.compile(r"^\d{4}-"), None, 100, 10_000, 1.0)
    lines = [
        "2026-01-01 ERROR boom",
        "Traceback (most recent call last):",
        '  File "x.py", line 1',
        "2026-01-01 INFO fine",
    ]
    out = joiner.push(records(*lines), [0, 22, 57, 79], now=0.0)
    assert [r["message"] for r in out] == ["\n".join(lines[:3])]
    assert out[0]["timestamp"] == 0.0 and out[0]["n"] == 0  # the first line's fields
    assert joiner.held_from == 79
    assert joiner.flush()[0]["message"] == lines[3]
    assert joiner.held_from is None


def test_continuation_pattern() -> None:
    joiner = MultilineJoiner(None, re.compile(r"^\s+at |^Caused by"), 100, 10_000, 1.0)
    lines = ["Exception in main", "  at a.b(C.java:1)", "Caused by: x", "  at d.e(F.java:2)", "next"]
    out = joiner.push(records(*lines), list(range(0, 50, 10)), now=0.0)
    assert [r["message"] for r in out] == ["\n".join(lines[:4])]
    assert joiner.orphans == 0


def test_orphans_overflows_and_truncated_parts_are_counted() -> None:
    joiner = MultilineJoiner(re.compile("^S"), None, 3, 10_000, 1.0)
    parts = records("orphan 1", "orphan 2", "S start", "c1", "c2", "c3", "c4")
    parts[3]["truncated"] = True
    out = joiner.push(parts, list(range(7)), now=0.0) + joiner.flush()
    assert [r["message"] for r in out] == ["orphan 1\norphan 2", "S start\nc1\nc2", "c3\nc4"]
    assert out[1]["truncated"] is True
    assert (joiner.orphans, joiner.overflows) == (1, 1)


def test_max_bytes_and_timeout() -> None:
    joiner = MultilineJoiner(re.compile("^S"), None, 100, 10, 0.5)
    out = joiner.push(records("S 123", "45678", "9"), [0, 6, 12], now=10.0)
    assert [r["message"] for r in out] == ["S 123"]  # "S 123\n45678" would be 11 characters
    assert joiner.overflows == 1 and joiner.held_from == 6
    assert not joiner.due(10.4) and joiner.due(10.5)
    assert [r["message"] for r in joiner.flush()] == ["45678\n9"]


def test_non_text_messages_pass_through() -> None:
    joiner = MultilineJoiner(re.compile("^S"), None, 100, 1000, 1.0)
    out = joiner.push(records("S a", "b", b"raw", None, "S c"), [0, 1, 2, 3, 4], now=0.0)
    assert [r["message"] for r in out] == ["S a\nb", b"raw", None]
    assert joiner.not_text == 2


PATTERNS = [r"^\d", r"^\s", r"^[A-Z]+:", r"^$", r"x", r"^(?:at|Caused)\b", r"^\S"]
line_text = st.text(alphabet=st.sampled_from("ab1 \tXYZ:é\u2028\x00\r\ufffd"), max_size=12)
message = st.one_of(line_text, line_text, line_text, st.binary(max_size=4), st.none())


@settings(max_examples=400, deadline=None)
@given(
    messages=st.lists(message, max_size=60),
    pattern=st.sampled_from(PATTERNS),
    mode=st.sampled_from(["start", "continuation"]),
    max_lines=st.integers(min_value=1, max_value=6),
    max_bytes=st.integers(min_value=1, max_value=40),
    chunks=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
    flush_at=st.lists(st.integers(min_value=0, max_value=60), max_size=3),
)
def test_fuzz_joiner_keeps_every_line_and_counts_what_does_not_fit(
    messages: list[Any],
    pattern: str,
    mode: str,
    max_lines: int,
    max_bytes: int,
    chunks: list[int],
    flush_at: list[int],
) -> None:
    regex = re.compile(pattern)
    joiner = MultilineJoiner(
        regex if mode == "start" else None, regex if mode == "continuation" else None, max_lines, max_bytes, 1.0
    )
    inputs = [{"message": m, "i": i} for i, m in enumerate(messages)]
    out: list[dict[str, Any]] = []
    start = 0
    for index, cut in enumerate([*sorted(c for c in chunks if c <= len(inputs)), len(inputs)]):
        out.extend(joiner.push(inputs[start:cut], list(range(start, cut)), now=float(index)))
        held = joiner.held_from
        assert (held is None) == (not joiner.holding)
        assert held is None or held < cut  # only lines already pushed are held
        if cut in flush_at:
            out.extend(joiner.flush())
        start = cut
    out.extend(joiner.flush())
    assert joiner.held_from is None

    # Nothing lost, nothing reordered: every text line is in exactly one record, in order.
    texts = [m for m in messages if isinstance(m, str)]
    joined = [r for r in out if isinstance(r["message"], str)]
    assert "\n".join(r["message"] for r in joined) == "\n".join(texts)
    assert len(joined) <= len(texts)
    assert [r["message"] for r in out if not isinstance(r["message"], str)] == [
        m for m in messages if not isinstance(m, str)
    ]
    assert joiner.not_text == len(messages) - len(texts)

    # Each record's first line is where it begins: records that began without a start line are counted.
    def begins(text: str) -> bool:
        found = regex.search(text) is not None
        return found if mode == "start" else not found

    first_lines = [r["i"] for r in joined]
    not_beginning = sum(1 for i in first_lines if not begins(messages[i]))
    assert not_beginning == joiner.orphans + joiner.overflows
    sizes = _line_counts(joined, messages)
    assert all(n <= max_lines for n in sizes)
    assert all(len(r["message"]) <= max_bytes or n == 1 for r, n in zip(joined, sizes, strict=True))


def _line_counts(joined: list[dict[str, Any]], messages: list[Any]) -> list[int]:
    """How many input lines each joined record holds (from the index of the next record's first line)."""
    text_indexes = [i for i, m in enumerate(messages) if isinstance(m, str)]
    firsts = [text_indexes.index(r["i"]) for r in joined]
    return [b - a for a, b in zip(firsts, [*firsts[1:], len(text_indexes)][: len(firsts)], strict=True)]


async def test_multiline_through_the_input_with_timeout(tmp_path: Path) -> None:
    h = Harness(tmp_path, multiline={"continuation": r"^\s", "timeout": "200ms"})
    log = h.logs / "app.log"
    append(log, "Exception: boom\n    at one\n    at two\nINFO next\n")
    await h.start()
    try:
        await h.wait_messages(1)
        assert h.messages == ["Exception: boom\n    at one\n    at two"]
        await h.wait_messages(2)  # "INFO next" waits for more lines, then the timeout emits it
        assert h.messages[1] == "INFO next"
        assert h.input is not None and h.input.counters()["multiline_orphans"] == 0
    finally:
        await h.stop()
