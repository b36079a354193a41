"""No command shows a secret (issue 13): every secret-bearing field of every plugin, every way it is printed.

The fields come from the plugins' models (tests/unit/config/secret_cases.py), so a new one is
covered here without editing this file. Each field gets a digits-only value (YAML reads it as
a number: the case that used to be echoed as "(got 734...)"), written literally or through
`${VAR}`, and the test reads everything the process printed.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from collector.testing import free_port, wait_for_sync
from tests.e2e.conftest import Collector, child_env, cli
from tests.unit.config.secret_cases import case_config, case_environ, leaked, secret_cases

pytestmark = pytest.mark.slow

CASES = secret_cases()
# Substituted secrets of a valid type are accepted, so that config is made invalid by another key.
INVALID = {"no_such_option": 1}


def write(tmp_path: Path, name: str, substituted: bool) -> Path:
    path = tmp_path / name
    path.write_text(
        case_config(
            CASES,
            substituted,
            header=f"data_dir: {tmp_path / 'data'}\n",
            extra=INVALID if substituted else None,
        )
    )
    return path


@pytest.mark.parametrize("substituted", [False, True], ids=["literal", "substituted"])
@pytest.mark.parametrize(
    "command",
    [["validate"], ["validate", "--format", "json"], ["run"], ["status", "files"]],
    ids=["validate", "validate-json", "run", "status-files"],
)
def test_no_command_shows_a_secret_of_an_invalid_config(tmp_path: Path, command: list[str], substituted: bool) -> None:
    config = write(tmp_path, "c.yaml", substituted)
    result = cli(*command, "-c", str(config), env=child_env(**case_environ(CASES)), timeout=30)
    assert result.returncode == 2, result.stderr
    assert leaked(CASES, result.stdout, result.stderr) == []
    shown = result.stdout + result.stderr
    if not substituted:  # each literal secret is reported by its key path, with the kind of problem
        for case in CASES:
            assert case.key_path in shown, (case, shown)
        assert "the value is secret and is not shown" in shown
    if command[-1] == "json":
        report = json.loads(result.stdout)
        assert report["valid"] is False and report["errors"]


def test_a_rejected_reload_logs_no_secret(collector: Collector, tmp_path: Path) -> None:
    collector.write_config(
        "inputs:\n  gen: {type: generator, rate: 10}\noutputs:\n  out: {type: blackhole, inputs: [gen]}\n"
    )
    collector.start(**case_environ(CASES))
    head = collector.config.read_text().split("inputs:")[0]
    for rejected, substituted in enumerate((False, True), start=1):
        collector.config.write_text(head + case_config(CASES, substituted, extra=INVALID if substituted else None))
        collector.signal(signal.SIGHUP)
        wait_for_sync(lambda n=rejected: collector.status()["reloads"]["failure"] == n, timeout=20)
    log = collector.stderr()
    assert "config reload rejected" in log
    for case in CASES:
        assert case.key_path in log, case
    assert leaked(CASES, log) == []
    collector.signal(signal.SIGTERM)
    assert collector.wait(20) == 0


def test_a_running_collector_never_shows_its_secrets(collector: Collector) -> None:
    """Secrets in use (a digits-only shared key from the environment, passwords, a proxy with credentials)
    stay out of /status, /metrics and the log, also while components fail because of them."""
    closed = free_port()  # nothing listens here: scrapes and proxied requests fail
    secrets = {
        "FW_KEY": "0012345678",
        "FW_PASSWORD": "4455667788",
        "PROM_TOKEN": "9988776655",
        "PROM_PASSWORD": "1122334455",
        "PROXY_PASSWORD": "6677889900",
    }
    collector.write_config(
        f"""
inputs:
  fw:
    type: forward
    listen: 127.0.0.1:{free_port()}
    shared_key: ${{FW_KEY}}
    users: [{{username: fluent, password: "${{FW_PASSWORD}}"}}]
  prom:
    type: prometheus
    targets: ["127.0.0.1:{closed}"]
    interval: 200ms
    bearer_token: ${{PROM_TOKEN}}
  prom_basic:
    type: prometheus
    targets: ["127.0.0.1:{closed}"]
    interval: 200ms
    basic_auth: {{username: scraper, password: "${{PROM_PASSWORD}}"}}
  gen: {{type: generator, rate: 50}}
outputs:
  out: {{type: blackhole, inputs: [fw, prom, prom_basic]}}
  s3:
    type: s3
    inputs: [gen]
    bucket: bucket-b
    region: eu-west-1
    endpoint_url: http://127.0.0.1:{closed}
    proxy: "http://ops:${{PROXY_PASSWORD}}@127.0.0.1:{closed}"
    batch: {{timeout: 100ms}}
    retry: {{initial_backoff: 50ms, max_backoff: 100ms}}
"""
    )
    collector.start(**secrets)
    wait_for_sync(lambda: collector.component("s3")["retries"] >= 2, timeout=20)
    status = collector.get("/status")[1]
    metrics = collector.get("/metrics")[1]
    assert '"fw"' in status and '"s3"' in status
    collector.signal(signal.SIGTERM)
    collector.wait(20)
    log = collector.stderr()
    for name, value in secrets.items():
        for where, text in (("/status", status), ("/metrics", metrics), ("log", log)):
            assert value not in text, f"{name} shown in {where}"
