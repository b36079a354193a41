"""`format: docker | cri` through the `file` input: partial lines joined, positions held, multiline after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from collector.testing import wait_for
from tests.plugins.file_input_support import Harness, append

pytest.importorskip("collector_plugins.inputs.file.container_formats")


def docker_line(text: str, stream: str = "stdout", time: str = "2026-11-27T10:00:00.123456789Z") -> str:
    return json.dumps({"log": text, "stream": stream, "time": time}) + "\n"


async def test_docker_lines_become_records_with_stream_and_runtime_time(tmp_path: Path) -> None:
    h = Harness(tmp_path, format="docker")
    log = h.logs / "c-json.log"
    append(log, docker_line("hello\n") + docker_line("oops\n", "stderr") + "not json at all\n")
    await h.start()
    try:
        await h.wait_messages(3)
        first, second, bad = h.records
        assert (first["message"], first["stream"], first["file"], first["host"]) == (
            "hello",
            "stdout",
            str(log),
            "testhost",
        )
        assert first["timestamp"] == pytest.approx(1795773600.123457, abs=1e-3)
        assert second["stream"] == "stderr"
        assert bad["message"] == "not json at all" and "parse_error" in bad
        assert h.input is not None and h.input.counters()["parse_errors"] == 1
    finally:
        await h.stop()


async def test_docker_partial_line_is_held_and_never_committed_past(tmp_path: Path) -> None:
    h = Harness(tmp_path, format="docker")
    log = h.logs / "c-json.log"
    complete = docker_line("whole\n")
    append(log, complete + docker_line("first part of a long line, "))  # no "\n" in log: more follows
    await h.start()
    await h.wait_messages(1)
    await h.wait_read_to_end()  # the partial line is read and held
    await h.stop()
    assert h.offsets() == {str(log): len(complete)}  # the held part is read again after a restart
    append(log, docker_line("second part\n"))
    await h.start()
    try:
        await h.wait_messages(2)
        assert h.messages == ["whole", "first part of a long line, second part"]
    finally:
        await h.stop()


async def test_multiline_applies_to_the_docker_message(tmp_path: Path) -> None:
    h = Harness(tmp_path, format="docker", multiline={"continuation": r"^\s", "timeout": "100ms"})
    log = h.logs / "c-json.log"
    append(log, docker_line("Traceback:\n") + docker_line("  line 1\n") + docker_line("  line 2\n"))
    await h.start()
    try:
        await h.wait_messages(1)
        assert h.messages == ["Traceback:\n  line 1\n  line 2"]
        assert h.records[0]["stream"] == "stdout"
    finally:
        await h.stop()


async def test_cri_lines(tmp_path: Path) -> None:
    h = Harness(tmp_path, format="cri")
    log = h.logs / "0.log"
    append(
        log,
        "2026-11-27T10:00:00.000000001Z stdout P part one, \n"
        "2026-11-27T10:00:00.000000002Z stdout F part two\n"
        "2026-11-27T10:00:01.000000000Z stderr F other\n",
    )
    await h.start()
    try:
        await h.wait_messages(2)
        assert [(r["message"], r["stream"]) for r in h.records] == [
            ("part one, part two", "stdout"),
            ("other", "stderr"),
        ]
    finally:
        await h.stop()


async def test_a_line_the_format_raises_on_costs_only_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A line format must never raise; if one does (a bug), the input would fail on the same bytes after every
    # restart and never read on. The chunk is parsed line by line instead, the failing line kept as text.
    from collector_plugins.inputs.file.container_formats import DockerFormat

    real = DockerFormat.parse

    def parse(self: DockerFormat, state: Any, lines: Any, offset: int) -> Any:
        if any(b"BOOM" in line for line in lines):
            raise OverflowError("a bug in the format")
        return real(self, state, lines, offset)

    monkeypatch.setattr(DockerFormat, "parse", parse)
    h = Harness(tmp_path, format="docker")
    log = h.logs / "c-json.log"
    text = "".join(docker_line(f"line {i}\n") if i != 500 else docker_line("BOOM\n") for i in range(1000))
    append(log, text)
    await h.start()
    try:
        messages = await h.wait_messages(1000)
        assert messages[:500] == [f"line {i}" for i in range(500)] and messages[501:] == [
            f"line {i}" for i in range(501, 1000)
        ]
        boom = h.records[500]
        assert json.loads(boom["message"])["log"] == "BOOM\n"
        assert boom["parse_error"] == "docker format failed: OverflowError: a bug in the format"
        assert h.input is not None and h.input.counters()["parse_errors"] == 1
        await wait_for(lambda: h.offsets() == {str(log): len(text.encode())})
    finally:
        await h.stop()
