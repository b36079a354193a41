"""`collector import`, run as the user runs it: the translated AWS docs examples pass `collector validate`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.e2e.conftest import cli
from tests.e2e.import_examples import (
    CLOUDWATCH_AGENT_DOC_EXAMPLE,
    CLOUDWATCH_AGENT_STATSD_EMF,
    XRAY_DAEMON_DOC_EXAMPLE,
    XRAY_DAEMON_SIDECAR,
)


@pytest.mark.parametrize(
    ("agent", "source", "filename"),
    [
        ("cloudwatch-agent", CLOUDWATCH_AGENT_DOC_EXAMPLE, "amazon-cloudwatch-agent.json"),
        ("cloudwatch-agent", CLOUDWATCH_AGENT_STATSD_EMF, "amazon-cloudwatch-agent.json"),
        ("xray-daemon", XRAY_DAEMON_DOC_EXAMPLE, "cfg.yaml"),
        ("xray-daemon", XRAY_DAEMON_SIDECAR, "cfg.yaml"),
    ],
)
def test_translated_config_validates(tmp_path: Path, agent: str, source: str, filename: str) -> None:
    (tmp_path / filename).write_text(source)
    out = cli("import", agent, str(tmp_path / filename))
    assert out.returncode == 0, out.stderr
    assert "not translated:" in out.stdout  # every example has keys we say we do not translate
    config = tmp_path / "collector.yaml"
    config.write_text(out.stdout)
    checked = cli("validate", "-c", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_output_file_option(tmp_path: Path) -> None:
    (tmp_path / "cfg.yaml").write_text(XRAY_DAEMON_SIDECAR)
    target = tmp_path / "out.yaml"
    out = cli("import", "xray-daemon", str(tmp_path / "cfg.yaml"), "-o", str(target))
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    assert yaml.safe_load(target.read_text())["outputs"]["xray_upload"]["region"] == "us-east-2"


def test_unreadable_and_invalid_input_exit_2(tmp_path: Path) -> None:
    missing = cli("import", "cloudwatch-agent", str(tmp_path / "absent.json"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr and "absent.json" in missing.stderr
    (tmp_path / "bad.json").write_text('{"logs": ')
    invalid = cli("import", "cloudwatch-agent", str(tmp_path / "bad.json"))
    assert invalid.returncode == 2
    assert "not valid JSON" in invalid.stderr and invalid.stdout == ""


def test_listed_in_help() -> None:
    out = cli("--help")
    assert "import" in out.stdout


def test_reads_stdin() -> None:
    out = cli("import", "xray-daemon", "-", input=XRAY_DAEMON_SIDECAR)
    assert out.returncode == 0, out.stderr
    assert yaml.safe_load(out.stdout)["inputs"]["xray"]["listen"] == "udp:0.0.0.0:2000 tcp:127.0.0.1:2001"
