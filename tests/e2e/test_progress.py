"""`dlq replay` draws a progress bar on a terminal and prints only its summary on a pipe."""

from __future__ import annotations

import os
import pty
import subprocess

from tests.e2e.conftest import Collector, child_env, cli
from tests.e2e.test_delivery import delivered, gate_config
from tests.installed import installed


def _dead_letters(collector: Collector) -> None:
    """100 dead letters for output `dest` (every 7th of 700 rejected), then a config that accepts them."""
    collector.write_config(
        gate_config(collector.workdir, "    batch_size: 50\n    count: 700", "{type: memory}", "    reject_every: 7\n")
    )
    collector.start(wait_ready=False)
    assert collector.wait(timeout=30) == 0
    collector.config.write_text(collector.config.read_text().replace("    reject_every: 7\n", ""))


def test_replay_on_a_pipe_prints_the_summary_and_no_bar(collector: Collector) -> None:
    _dead_letters(collector)
    replay = cli("dlq", "replay", "dest", "-c", str(collector.config))
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.splitlines() == [
        "replayed 100 record(s) from 1 file(s): 100 delivered, 0 rejected again (kept as dead letters)"
    ]
    assert "\r" not in replay.stderr and "[" not in replay.stderr and "#" not in replay.stderr


def test_replay_on_a_terminal_draws_a_bar_that_ends_full(collector: Collector) -> None:
    _dead_letters(collector)
    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [installed().collector, "dlq", "replay", "dest", "-c", str(collector.config)],
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=child_env(),
            timeout=60,
            check=False,
        )
        os.close(terminal)
        terminal = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal's other side is closed and everything was read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if terminal >= 0:
            os.close(terminal)
        os.close(controller)
    assert proc.returncode == 0, drawn
    frames = drawn.decode().replace("\r\n", "\n").split("\r")
    assert "[" + "#" * 30 + "] 100% 100/100 records" in frames[-1], drawn
    assert b"replayed 100 record(s)" in proc.stdout
    assert sorted(delivered(collector.workdir / "delivered.jsonl")) == list(range(700))
