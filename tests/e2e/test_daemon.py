"""`collector run` as a process: signals, reload, supervision, the API, systemd notify."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

from collector.testing import wait_for_sync
from tests.e2e.conftest import Collector, cli

BASE = """\
inputs:
  gen:
    type: generator
    rate: 2000
    batch_size: 100
outputs:
  hole:
    type: blackhole
    inputs: [gen]
"""


def test_run_serves_health_metrics_status_and_drains_on_sigterm(collector: Collector) -> None:
    collector.write_config(BASE + "  file:\n    type: file\n    inputs: [gen]\n    path: out/gen.jsonl\n")
    collector.start()
    assert collector.get("/healthz")[0] == 200
    wait_for_sync(lambda: collector.metric("collector_component_received_events_total", component="hole") > 0)
    status = collector.status()
    assert {c["name"]: c["section"] for c in status["components"]} == {
        "gen": "inputs",
        "hole": "outputs",
        "file": "outputs",
    }
    assert status["ready"] is True

    collector.signal(signal.SIGTERM)
    assert collector.wait() == 0
    stderr = collector.stderr()
    assert 'msg="collector stopped" drained=True' in stderr
    lines = (collector.workdir / "data" / "out" / "gen.jsonl").read_text().splitlines()
    sequences = [json.loads(line)["sequence"] for line in lines]
    assert sequences == list(range(len(sequences)))  # drained in order, nothing missing


def test_sighup_reload_starts_new_output_and_keeps_unchanged_input(collector: Collector) -> None:
    collector.write_config(BASE)
    collector.start()
    wait_for_sync(lambda: collector.component("gen")["sent_events"] >= 200)
    before = collector.component("gen")["sent_events"]

    collector.write_config(BASE + "  file:\n    type: file\n    inputs: [gen]\n    path: out/new.jsonl\n")
    collector.signal(signal.SIGHUP)
    wait_for_sync(lambda: collector.status()["reloads"]["success"] == 1)
    wait_for_sync(lambda: collector.component("file")["received_events"] > 0)
    # The generator was not restarted: its counter kept growing from where it was.
    assert collector.component("gen")["sent_events"] > before
    assert "config reloaded" in collector.stderr() and "added=file" in collector.stderr()
    assert (collector.workdir / "data" / "out" / "new.jsonl").exists()

    # An invalid config is rejected with its errors; the running one keeps going.
    collector.config.write_text(collector.config.read_text().replace("type: blackhole", "type: blackhol"))
    collector.signal(signal.SIGHUP)
    wait_for_sync(lambda: collector.status()["reloads"]["failure"] == 1)
    assert "unknown output type `blackhol`" in collector.stderr()
    running = collector.component("hole")["received_events"]
    wait_for_sync(lambda: collector.component("hole")["received_events"] > running)
    collector.signal(signal.SIGTERM)
    assert collector.wait() == 0


def test_failing_component_is_restarted_and_counted(collector: Collector) -> None:
    collector.write_config("""\
inputs:
  gen: {type: generator, rate: 5000, batch_size: 50}
processors:
  flaky: {type: chaos, inputs: [gen], every: 1}
outputs:
  hole: {type: blackhole, inputs: [flaky]}
""")
    collector.start()
    # Raising on every call, on each record alone too: the records pass on tagged (counted as isolated, not
    # lost) and the component, broken rather than its input, is restarted.
    wait_for_sync(lambda: collector.metric("collector_component_restarts_total", component="flaky") >= 2, timeout=20)
    assert collector.metric("collector_component_errors_total", component="flaky") >= 2
    assert collector.metric("collector_component_isolated_events_total", component="flaky") >= 100
    # Still flowing after restarts, and the process never died.
    seen = collector.component("hole")["received_events"]
    wait_for_sync(lambda: collector.component("hole")["received_events"] > seen)
    stderr = collector.stderr()
    assert stderr.count("Traceback") == 1  # the traceback once, then one line per interval
    assert 'msg="component failed; restarting it" component=flaky' in stderr
    collector.signal(signal.SIGTERM)
    assert collector.wait() == 0


def test_systemd_notify_protocol(collector: Collector, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    try:
        collector.write_config(BASE)
        collector.start(NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="400000")
        messages: list[str] = []

        def receive_until(marker: str) -> None:
            def received() -> bool:
                if not any(marker in m for m in messages):
                    messages.append(sock.recv(4096).decode())  # blocks up to the socket's timeout
                return any(marker in m for m in messages)

            try:
                wait_for_sync(received, timeout=10, interval=0)
            except TimeoutError:
                raise AssertionError(messages) from None

        receive_until("READY=1")
        receive_until("WATCHDOG=1")
        collector.signal(signal.SIGHUP)
        receive_until("RELOADING=1")
        assert any("MONOTONIC_USEC=" in m for m in messages)
        collector.signal(signal.SIGTERM)
        receive_until("STOPPING=1")
        assert collector.wait() == 0
    finally:
        sock.close()


def test_top_renders_a_snapshot(collector: Collector) -> None:
    collector.write_config(BASE)
    collector.start()
    out = cli("top", "--api", f"http://127.0.0.1:{collector.port}", "--once", "--interval", "0.5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("collector ")
    gen = next(line for line in lines if line.startswith("gen "))
    assert "generator" in gen and "running" in gen and "/s" in gen
    collector.signal(signal.SIGTERM)
    assert collector.wait() == 0


def test_port_in_use_is_a_clear_error(collector: Collector) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", collector.port))
    blocker.listen()
    try:
        collector.write_config(BASE)
        out = cli("run", "-c", str(collector.config), timeout=30)
        assert out.returncode == 1
        assert "cannot listen for the API" in out.stderr
    finally:
        blocker.close()
