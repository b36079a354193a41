"""`collector top` shows what /healthz and /readyz complain about, and each buffer's condition."""

from __future__ import annotations

from collector.top import render


def status(buffer: dict, checkpoint_failures: int = 2, **top: object) -> dict:
    return {
        "version": "0.1.0",
        "time": 10.0,
        "ready": True,
        "healthy": True,
        "health_problems": [],
        "components": [
            {"name": "app", "section": "inputs", "type": "file", "checkpoint_failures": checkpoint_failures},
            {"name": "dest", "section": "outputs", "type": "gate", "buffer": buffer},
        ],
        **top,
    }


def test_a_refusing_buffer_and_the_probes_problems_are_listed() -> None:
    buffer = {
        "type": "disk",
        "events": 0,
        "bytes": 4096,
        "accepting": False,
        "condition": "write_failing",
        "blocked_seconds": 42.4,
        "error": "ENOSPC: No space left on device",
        "write_errors": 40,
        "ledger_errors": 3,
    }
    text = render(
        status(
            buffer,
            ready=False,
            ready_reason="dest: cannot accept data: disk buffer cannot write (ENOSPC) for 42s",
            healthy=False,
            health_problems=["dest: buffer wedged: refusing data for 42s with nothing left to deliver"],
        ),
        None,
    )
    assert "healthy False" in text and "ready False" in text
    assert "!disk 0/" in text
    problems = text.split("PROBLEMS\n", 1)[1].splitlines()
    assert problems == [
        "  dest: buffer wedged: refusing data for 42s with nothing left to deliver",
        "  not ready: dest: cannot accept data: disk buffer cannot write (ENOSPC) for 42s",
        "  app: 2 checkpoint writes failed",
        "  dest: buffer disk refuses writes (ENOSPC: No space left on device) for 42s",
        "  dest: disk buffer errors since start: write=40 ledger=3",
    ]


def test_nothing_to_report() -> None:
    buffer = {"type": "memory", "events": 3, "bytes": 10, "accepting": True, "condition": "ok"}
    text = render(status(buffer, checkpoint_failures=0), None)
    assert " memo 3/10B " in text and "!" not in text and "PROBLEMS" not in text
