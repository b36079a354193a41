"""The real `collector run` process reading a real systemd-journald, restarted between writes: every entry
written with `systemd-cat` and `logger --journald` arrives exactly once."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from collector.testing import wait_for_sync
from tests.e2e.conftest import Collector, json_lines
from tests.peers.journald import Journald, available

WHY_NOT = available()
pytestmark = [pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT or ""), pytest.mark.slow]


def delivered(path: Path) -> list[str]:
    if not path.exists():
        return []
    records = json_lines(path)
    return [r["message"] for r in records if r.get("SYSLOG_IDENTIFIER") in ("catapp", "nativeapp")]


def test_restarts_between_writes_deliver_every_entry_once(tmp_path: Path) -> None:
    journal = Journald(tmp_path / "journald")
    collector = Collector(tmp_path)
    out = tmp_path / "out.jsonl"
    collector.write_config(
        f"""
inputs:
  journal:
    type: journald
    directory: {journal.store}
    read_from: beginning
    matches: ["SYSLOG_IDENTIFIER=catapp", "SYSLOG_IDENTIFIER=nativeapp"]
outputs:
  archive:
    type: file
    inputs: [journal]
    path: {out}
    buffer: {{type: disk, max_bytes: 64MiB}}
"""
    )
    expected: list[str] = []
    try:
        for round_ in range(3):
            lines = [f"round {round_} cat {i}" for i in range(100)]
            journal.cat("catapp", lines)
            journal.logger({"MESSAGE": f"round {round_} native", "SYSLOG_IDENTIFIER": "nativeapp"})
            expected += [*lines, f"round {round_} native"]
            collector.start()
            total = len(expected)
            wait_for_sync(lambda total=total: len(delivered(out)) >= total, timeout=20)
            collector.signal(signal.SIGTERM)
            assert collector.wait() == 0, collector.stderr()
        # Written while the collector is down, read when it comes back.
        journal.cat("catapp", ["while down"])
        expected.append("while down")
        collector.start()
        wait_for_sync(lambda: len(delivered(out)) >= len(expected), timeout=20)
        collector.signal(signal.SIGTERM)
        assert collector.wait() == 0, collector.stderr()
    finally:
        collector.stop()
        journal.stop()
    got = delivered(out)
    assert sorted(got) == sorted(expected)  # none missing, none twice
    # In order per writer: journald takes systemd-cat's stream and logger's datagrams on two sockets and may
    # store a round's native entry before the stream's lines, so only each writer's own order is fixed.
    for native in (False, True):
        assert [m for m in got if ("native" in m) == native] == [m for m in expected if ("native" in m) == native]
