"""Every commented example of the default collector.yaml validates and works once uncommented as it says.

An example is the commented lines right under each `# --- example: NAME ---` marker, up to
the next blank line; it may have blocks in several sections (an input and the output it
feeds) and may name others it needs. The test uncomments them exactly that way, validates
with the installed CLI, and runs the ones that need no cloud or root briefly.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from collector.testing import free_port, wait_for_sync
from tests.e2e.conftest import REPO, child_env, cli, json_lines
from tests.installed import installed

DEFAULT = REPO / "collector.yaml"
MARKER = re.compile(r"^\s*# --- example: (?P<name>\w+)(?: \(needs: (?P<needs>[\w, ]+)\))? ---$")
# Needs an AWS account (credentials) to do anything: validated, not run.
CLOUD = {"xray", "cloudwatch_logs", "cloudwatch_metrics"}


def examples(text: str) -> dict[str, list[str]]:
    """Example name -> the names of the examples it needs (itself first)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if m := MARKER.match(line):
            needs = [n.strip() for n in (m["needs"] or "").split(",") if n.strip()]
            found.setdefault(m["name"], [m["name"]])
            found[m["name"]] += [n for n in needs if n not in found[m["name"]]]
    return found


def uncomment(text: str, names: list[str]) -> str:
    """The config with every block of these examples uncommented, the rest untouched."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if m := MARKER.match(line):
            inside = m["name"] in names
        elif not line.strip():
            inside = False
        elif inside:
            assert re.match(r"^\s*# ", line), f"not a commented YAML line in an example block: {line!r}"
            line = re.sub(r"^(\s*)# ", r"\1", line, count=1)
        out.append(line)
    return "\n".join(out) + "\n"


TEXT = DEFAULT.read_text()
EXAMPLES = examples(TEXT)


def test_every_example_is_found() -> None:
    assert set(EXAMPLES) >= {"app_logs", "app_metrics", "syslog", "xray", "cloudwatch_logs", "cloudwatch_metrics"}
    # Uncommenting nothing changes nothing, and the default config as it ships validates.
    assert uncomment(TEXT, []) == TEXT.rstrip("\n") + "\n"
    result = cli("validate", "-c", str(DEFAULT))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_each_example_validates_once_uncommented(name: str, tmp_path: Path) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text(uncomment(TEXT, EXAMPLES[name]))
    result = cli("validate", "-c", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def _ports(text: str, tmp_path: Path) -> tuple[str, dict[str, int]]:
    """Loopback ports of the examples moved to free ones (the usual ports may be taken on the test machine)."""
    ports: dict[str, int] = {}
    for port in sorted(set(re.findall(r"127\.0\.0\.1:(\d+)", text))):
        ports[port] = free_port()
        text = text.replace(f"127.0.0.1:{port}", f"127.0.0.1:{ports[port]}")
    return text, ports


def _run(text: str, tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, dict[str, int]]:
    text, ports = _ports(text, tmp_path)
    config = tmp_path / "collector.yaml"
    config.write_text(text)
    api = free_port()
    env = child_env(COLLECTOR_DATA_DIR=str(tmp_path / "data"), COLLECTOR_API_LISTEN=f"127.0.0.1:{api}")
    with (tmp_path / "stderr.log").open("wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen([installed().collector, "run", "-c", str(config)], stderr=log, env=env, cwd=tmp_path)
    wait_for_sync(lambda: _ready(proc, api, tmp_path), timeout=20)
    return proc, tmp_path / "data" / "out", ports


def _ready(proc: subprocess.Popen[bytes], api: int, tmp_path: Path) -> bool:
    assert proc.poll() is None, (tmp_path / "stderr.log").read_text()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _records(path: Path) -> list[dict]:
    return json_lines(path)


def _stop(proc: subprocess.Popen[bytes], tmp_path: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0, (tmp_path / "stderr.log").read_text()
    assert "Traceback" not in (tmp_path / "stderr.log").read_text()


def test_the_app_logs_example_collects_a_log_file(tmp_path: Path) -> None:
    logs = tmp_path / "app"
    logs.mkdir()
    (logs / "a.log").write_text("2026-12-06 04:00:00 first\n  continued\n2026-12-06 04:00:01 second\n")
    text = uncomment(TEXT, EXAMPLES["app_logs"]).replace("/var/log/app/*.log", f"{logs}/*.log")
    proc, out, _ = _run(text, tmp_path)
    try:
        wait_for_sync(lambda: len(_records(out / "app_logs.jsonl")) >= 2, timeout=20)
        messages = [r.get("message") for r in _records(out / "app_logs.jsonl")]
        assert messages[0].startswith("2026-12-06 04:00:00 first") and "continued" in messages[0]
    finally:
        _stop(proc, tmp_path)


def test_the_app_metrics_example_receives_statsd(tmp_path: Path) -> None:
    proc, out, ports = _run(uncomment(TEXT, EXAMPLES["app_metrics"]), tmp_path)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _ in range(3):
                s.sendto(b"requests:1|c", ("127.0.0.1", ports["8125"]))
    finally:  # counters are aggregated per 60 s window; a stop emits the open one
        _stop(proc, tmp_path)
    assert [r["value"] for r in _records(out / "app_metrics.jsonl") if r.get("name") == "requests"] == [3.0]


def test_the_syslog_example_receives_syslog(tmp_path: Path) -> None:
    proc, out, ports = _run(uncomment(TEXT, EXAMPLES["syslog"]), tmp_path)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"<34>1 2026-12-06T04:00:00Z host app 1 - - hello syslog", ("127.0.0.1", ports["5514"]))
        wait_for_sync(lambda: "hello syslog" in json.dumps(_records(out / "syslog.jsonl")), timeout=20)
    finally:
        _stop(proc, tmp_path)


def test_the_stdin_example_exits_at_eof_with_the_lines_in_its_output(tmp_path: Path) -> None:
    assert "collector run -c examples/stdin.yaml" in TEXT
    lines = ['{"level":"error","msg":"hi"}', "plain text line"]
    result = cli(
        "run",
        "-c",
        str(REPO / "examples" / "stdin.yaml"),
        input="\n".join(lines) + "\n",
        env=child_env(COLLECTOR_DATA_DIR=str(tmp_path / "data")),
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(out) == 2 and "hi" in json.dumps(out[0]) and "plain text line" in json.dumps(out[1]), result.stdout
