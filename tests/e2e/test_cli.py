"""The CLI's one-shot commands, run as the user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.e2e.conftest import REPO, child_env, cli

THREE_MISTAKES = """\
inputs:
  demo:
    type: generator
    rate: 10
    batch_sise: 100
processors:
  enrich:
    type: add_fields
    inputs: [demo]
    fields: {env: prod}
outputs:
  local:
    type: fille
    inputs: [enrich]
  screen:
    type: stdout
    inputs: [enrihc]
"""


def test_version() -> None:
    out = cli("version")
    assert out.returncode == 0
    assert out.stdout.startswith("collector 0.")


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["validate"],
        ["schema"],
        ["version"],
        ["top"],
        ["plugins"],
        ["tap"],
        ["test"],
        ["import"],
        ["trace"],
    ],
)
def test_help_everywhere(command: list[str]) -> None:
    out = cli(*command, "--help")
    assert out.returncode == 0
    assert "usage: collector" in out.stdout


def test_validate_reports_every_mistake_with_lines_and_hints(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(THREE_MISTAKES)
    out = cli("validate", "-c", str(config))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[0] == "3 errors in config:"
    assert (
        lines[1].strip() == f"{config}:5:5: inputs.demo.batch_sise: unknown option `batch_sise` "
        "(hint: did you mean `batch_size`?)"
    )
    assert (
        lines[2].strip() == f"{config}:13:11: outputs.local.type: unknown output type `fille` "
        "(hint: did you mean `file`?)"
    )
    assert (
        lines[3].strip() == f"{config}:17:14: outputs.screen.inputs[0]: unknown component `enrihc` "
        "(hint: did you mean `enrich`?)"
    )


def test_validate_json_report_and_no_side_effects(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(THREE_MISTAKES)
    out = cli("validate", "-c", str(config), "--format", "json")
    report = json.loads(out.stdout)
    assert out.returncode == 2 and report["valid"] is False
    assert [e["line"] for e in report["errors"]] == [5, 13, 17]
    good = tmp_path / "good.yaml"
    good.write_text(
        "data_dir: ./state\ninputs:\n  g: {type: generator, count: 1}\n"
        "outputs:\n  f: {type: file, inputs: [g], path: out.jsonl}\n"
    )
    out = cli("validate", "-c", str(good))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "good.yaml"]  # nothing created


def test_validate_missing_file() -> None:
    out = cli("validate", "-c", "/nonexistent/collector.yaml")
    assert out.returncode == 2
    assert "cannot read config" in out.stderr


def test_default_config_is_valid_and_matches_the_schema(tmp_path: Path) -> None:
    out = cli("validate", "-c", str(REPO / "collector.yaml"))
    assert out.returncode == 0, out.stderr
    schema_out = cli("schema")
    assert schema_out.returncode == 0
    schema = json.loads(schema_out.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    document = yaml.safe_load((REPO / "collector.yaml").read_text())
    jsonschema.validate(document, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"inputs": {"x": {"type": "generator", "bogus": 1}}}, schema)


def test_schema_to_file(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert cli("schema", "-o", str(target)).returncode == 0
    names = set(json.loads(target.read_text())["properties"])
    assert {"inputs", "processors", "outputs", "data_dir", "api", "log", "shutdown_grace"} <= names


def test_third_party_plugin_is_found_through_its_entry_point() -> None:
    out = cli("plugins", "--format", "json", env=child_env())
    plugins = {p["type"]: p for p in json.loads(out.stdout)["plugins"]}
    assert plugins["chaos"]["section"] == "processors"
    for builtin in (
        "generator",
        "stdin",
        "internal_metrics",
        "add_fields",
        "filter",
        "parse_json",
        "stdout",
        "file",
        "blackhole",
    ):
        assert builtin in plugins


def test_stdin_to_stdout_exits_when_input_ends(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data_dir: {tmp_path}\napi: {{enabled: false}}\n"
        "inputs:\n  in: {type: stdin}\n"
        "processors:\n  json: {type: parse_json, inputs: [in]}\n"
        "outputs:\n  out: {type: stdout, inputs: [json], codec: json}\n"
    )
    out = cli("run", "-c", str(config), input='{"level":"error","n":1}\nplain line\n{"n":2}\n', timeout=30)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r.get("n") for r in records] == [1, None, 2]
    assert records[0]["level"] == "error"
    assert records[1]["message"] == "plain line"


def test_a_third_party_command_is_listed_and_runs(tmp_path: Path) -> None:
    listed = cli("--help")
    assert listed.returncode == 0
    assert "chaos-count" in listed.stdout and "count the chaos processors of a config" in listed.stdout
    # The built-in plugins' commands arrive the same way.
    for builtin in ("trace", "athena-ddl", "status"):
        assert builtin in listed.stdout
    assert "broken command plugins" not in listed.stdout
    assert "usage: collector chaos-count" in cli("chaos-count", "--help").stdout

    config = tmp_path / "c.yaml"
    config.write_text(
        "inputs:\n  gen: {type: generator, count: 1}\n"
        "processors:\n  flaky: {type: chaos, inputs: [gen], every: 3}\n"
        "outputs:\n  out: {type: blackhole, inputs: [flaky]}\n"
    )
    ran = cli("chaos-count", "-c", str(config), "--format", "json")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"chaos": {"flaky": 3}}
    # The core's config helper: an invalid config is reported as `collector validate` reports it, exit 2.
    config.write_text(THREE_MISTAKES)
    bad = cli("chaos-count", "-c", str(config))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[0] == "3 errors in config:"


EMF_TWICE = """\
data_dir: ./state
inputs:
  apps:
    type: emf
    emit: [logs, metrics]
outputs:
  logs:
    type: cloudwatch_logs
    inputs: [apps]
    log_group: /app
    log_stream: "{host}"
  metrics:
    type: cloudwatch_metrics
    inputs: [apps]
    namespace: App
"""


def test_validate_warns_when_emf_metrics_would_be_published_twice(tmp_path: Path) -> None:
    config = tmp_path / "twice.yaml"
    config.write_text(EMF_TWICE)
    out = cli("validate", "-c", str(config))
    assert out.returncode == 0, out.stderr  # a warning, not an error
    assert out.stdout.strip() == f"{config}: valid (3 components)"
    (warning,) = out.stderr.strip().splitlines()
    assert warning.startswith(f"warning: {config}:3:3: inputs.apps: the metrics of `apps` reach CloudWatch twice")
    assert "through `logs` (cloudwatch_logs" in warning and "through `metrics` (cloudwatch_metrics)" in warning
    assert "(hint: route `apps`'s metrics to one of the two" in warning
    report = json.loads(cli("validate", "-c", str(config), "--format", "json").stdout)
    assert report["valid"] is True
    assert [(w["line"], w["path"]) for w in report["warnings"]] == [(3, "inputs.apps")]
    config.write_text(EMF_TWICE.split("  metrics:")[0])  # the documents to CloudWatch Logs only: no warning
    out = cli("validate", "-c", str(config))
    assert (out.returncode, out.stderr) == (0, "")
