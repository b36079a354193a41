"""`collector top` shows what /healthz and /readyz complain about, and each buffer's condition."""

from __future__ import annotations

from collector.top import RateWindow, render


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


def bursty(t: int, name: str = "self_metrics") -> dict:
    """A snapshot at time t of an input that emits 100 events every 10 s, as internal_metrics does."""
    n = 100 * (t // 10)
    return {
        "version": "0.1.0",
        "time": float(t),
        "components": [
            {"name": name, "section": "inputs", "type": "internal_metrics", "state": "running", "received_events": n},
            {"name": "out", "section": "outputs", "type": "file", "state": "running", "sent_events": n},
        ],
    }


def row(text: str, name: str) -> list[str]:
    return next(line.split() for line in text.splitlines() if line.startswith(name + " "))


def test_bursty_flows_show_their_rate_over_the_window_and_their_totals() -> None:
    window = RateWindow(30)
    for t in range(0, 40):  # one snapshot a second; the last burst was at t=30
        window.add(bursty(t))
    text = render(bursty(39), window.baseline())
    assert window.baseline()["time"] == 9.0  # type: ignore[index]
    # 300 events between t=9 and t=39 (bursts at 10, 20, 30): 10/s, although the last second saw none.
    assert row(text, "self_metrics")[3:8] == ["10/s", "0/s", "0B/s", "300", "0"]
    assert row(text, "out")[3:8] == ["0/s", "10/s", "0B/s", "0", "300"]
    assert "rates over the last 30s" in text
    # The old behaviour, a one-second difference, shows nothing for the same flow.
    assert row(render(bursty(39), bursty(38)), "self_metrics")[3] == "0/s"


def test_the_window_fills_up_before_it_slides() -> None:
    window = RateWindow(30)
    window.add(bursty(0))
    assert window.baseline() is None
    assert "waiting for a second snapshot" in render(bursty(0), window.baseline())
    for t in range(1, 16):
        window.add(bursty(t))
    assert window.baseline()["time"] == 0.0  # type: ignore[index]
    assert row(render(bursty(15), window.baseline()), "self_metrics")[3] == "7/s"  # 100 in 15 s


def test_long_names_are_never_cut_and_columns_line_up() -> None:
    name = "a_very_long_component_name_from_a_real_config_" * 2
    text = render(bursty(20, name), bursty(0, name), width=80)
    lines = text.splitlines()
    assert row(text, name)[0] == name
    header = next(line for line in lines if line.startswith("COMPONENT"))
    body = next(line for line in lines if line.startswith(name))
    assert header.index("TYPE") == body.index("internal_metrics") == len(name) + 2
