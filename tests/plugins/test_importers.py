"""`collector import`: the AWS docs' example configs translate into configs that validate, key by key."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.api import ComponentContext
from collector.config.loader import parse_config
from collector.events import LOGS, Batch
from collector_plugins.commands.importers.command import translate
from collector_plugins.commands.importers.document import ImportFailed
from collector_plugins.processors.filter.processor import Filter, FilterConfig
from collector_plugins.processors.parse_regex.processor import ParseRegex, ParseRegexConfig
from collector_plugins.processors.parse_timestamp.processor import ParseTimestamp, ParseTimestampConfig
from tests.e2e.import_examples import (
    CLOUDWATCH_AGENT_DOC_EXAMPLE,
    CLOUDWATCH_AGENT_STATSD_EMF,
    XRAY_DAEMON_DOC_EXAMPLE,
    XRAY_DAEMON_SIDECAR,
)


def _translated(agent: str, text: str) -> tuple[str, dict[str, Any]]:
    rendered = translate(agent, text, "example")
    parse_config(rendered, "translated.yaml", environ={})  # raises ConfigError listing every problem
    return rendered, yaml.safe_load(rendered)


def _comments(rendered: str) -> str:
    return "\n".join(line for line in rendered.splitlines() if line.lstrip().startswith("#"))


def test_cloudwatch_agent_doc_example_maps_each_known_key() -> None:
    rendered, config = _translated("cloudwatch-agent", CLOUDWATCH_AGENT_DOC_EXAMPLE)
    inputs, processors, outputs = config["inputs"], config["processors"], config["outputs"]
    # One host_metrics input per group: each has its own interval in the agent.
    assert inputs["cpu"] == {"type": "host_metrics", "collect": ["cpu"], "interval": "10s", "per_cpu": True}
    assert inputs["disk"]["mount_points"] == ["/", "/tmp"]
    assert inputs["disk"]["ignore_fstypes"] == ["sysfs", "devtmpfs"]
    assert inputs["mem"]["interval"] == "1s"
    assert inputs["swap"]["interval"] == "60s"  # the agent section's interval
    assert processors["cpu_dimensions"] == {
        "type": "add_fields",
        "inputs": ["cpu"],
        "fields": {
            "customized_dimension_key_1": "customized_dimension_value_1",
            "customized_dimension_key_2": "customized_dimension_value_2",
        },
    }
    metrics = outputs["cloudwatch_metrics"]
    assert metrics["namespace"] == "MyCustomNamespace"
    assert metrics["region"] == "us-west-1"
    assert "cpu_dimensions" in metrics["inputs"] and "disk_dimensions" in metrics["inputs"]
    assert "swap" in metrics["inputs"]
    assert metrics["append_dimensions"]["InstanceId"] == "{aws:InstanceId}"
    files = [name for name, body in inputs.items() if body["type"] == "file"]
    assert len(files) == 2
    groups = {body["log_group"]: body for body in outputs.values() if body["type"] == "cloudwatch_logs"}
    assert groups["test.log"]["log_stream"] == "test.log"
    assert groups["test.log"]["region"] == "us-west-1"
    comments = _comments(rendered)
    for untranslated in (
        "agent.logfile",
        "agent.debug",
        "agent.run_as_user",
        "metrics.aggregation_dimensions",
        "metrics.force_flush_interval",
        "logs.force_flush_interval",
        "timezone = 'Local'",
        "net.resources = ['eth0']",
        "cpu.measurement",
        "cpu.totalcpu = False",
    ):
        assert f"not translated: {untranslated}" in comments, untranslated


def test_statsd_emf_and_file_options() -> None:
    rendered, config = _translated("cloudwatch-agent", CLOUDWATCH_AGENT_STATSD_EMF)
    inputs, outputs = config["inputs"], config["outputs"]
    assert inputs["statsd"] == {"type": "statsd", "listen": ["udp://0.0.0.0:8125"], "interval": "10s"}
    assert inputs["emf"]["listen"] == ["tcp://127.0.0.1:25888", "udp://127.0.0.1:25888"]
    assert outputs["emf_cloudwatch"]["inputs"] == ["emf"]
    assert outputs["emf_cloudwatch"]["log_group"] == "{log_group_name}"
    app = inputs["app"]
    assert app["include"] == ["/var/log/app/*.log"]
    assert app["multiline"] == {"start": r"^\d{4}-\d{2}-\d{2}"}
    assert app["encoding"] == "utf-16"
    processors = config["processors"]
    # timestamp_format: the time is found in the line and becomes the record's timestamp.
    assert processors["app_time"]["inputs"] == ["app"]
    assert processors["app_timestamp"]["inputs"] == ["app_time"]
    assert processors["app_timestamp"]["formats"] == ["%Y-%m-%d %H:%M:%S"]
    out = outputs["app_cloudwatch"]
    assert out["inputs"] == ["app_timestamp"]
    assert out["log_group"] == "/ec2/{host}/app"
    assert out["log_stream"] == "{host}-{host}"
    assert out["retention_days"] == 30
    assert out["log_group_class"] == "INFREQUENT_ACCESS"
    comments = _comments(rendered)
    assert "not translated: auto_removal = True" in comments
    assert "not translated: statsd.metrics_aggregation_interval = 60" in comments
    assert "not translated: timezone = 'Local' (parse_timestamp needs an IANA zone" in comments  # the agent's default
    assert "placeholder {instance_id}" in comments and "placeholder {ip_address}" in comments


def test_literal_braces_and_dollars_survive() -> None:
    source = {
        "logs": {
            "logs_collected": {
                "files": {"collect_list": [{"file_path": "/l/a.log", "log_group_name": "g{x}$HOME{hostname}"}]}
            }
        }
    }
    _, config = _translated("cloudwatch-agent", json.dumps(source))
    assert config["outputs"]["a_cloudwatch"]["log_group"] == "g{{x}}$$HOME{host}"


def test_xray_daemon_doc_example() -> None:
    rendered, config = _translated("xray-daemon", XRAY_DAEMON_DOC_EXAMPLE)
    assert config["inputs"]["xray"] == {"type": "xray", "listen": "127.0.0.1:2000"}
    # Empty strings are the daemon's "unset": nothing is written for them.
    assert config["outputs"]["xray_upload"] == {"type": "xray", "inputs": ["xray"], "concurrency": 8}
    comments = _comments(rendered)
    assert "not translated: TotalBufferSizeMB = 0" in comments
    assert "not translated: Logging = " in comments
    assert "not translated: NoVerifySSL = False" in comments


def test_xray_daemon_with_values() -> None:
    _, config = _translated("xray-daemon", XRAY_DAEMON_SIDECAR)
    assert config["inputs"]["xray"]["listen"] == "udp:0.0.0.0:2000 tcp:127.0.0.1:2001"
    out = config["outputs"]["xray_upload"]
    assert out["region"] == "us-east-2"
    assert out["role_arn"] == "arn:aws:iam::123456789012:role/xray-cross-account"
    assert out["proxy"] == "http://127.0.0.1:3128"
    assert out["concurrency"] == 16
    assert out["local_mode"] is True
    assert out["buffer"] == {"max_bytes": "24MiB"}


@pytest.mark.parametrize(
    ("agent", "text", "reason"),
    [
        ("cloudwatch-agent", "{not json", "not valid JSON"),
        ("cloudwatch-agent", "[1, 2]", "top level must be a JSON object"),
        ("cloudwatch-agent", '{"logs": []}', "`logs` must be a JSON object"),
        ("cloudwatch-agent", '{"logs": {"logs_collected": {"files": {"collect_list": [{}]}}}}', "file_path"),
        ("xray-daemon", "Socket: [", "not valid YAML"),
        ("xray-daemon", "- a\n- b\n", "top level must be a YAML mapping"),
        ("xray-daemon", "Socket: 5\n", "`Socket` must be a mapping"),
        ("cloudwatch-agent", "{}", "nothing to translate; the config is empty"),
        ("cloudwatch-agent", '{"metrics": {"metrics_collected": {"collectd": {}}}}', "nothing to translate; not tr"),
    ],
)
def test_invalid_input_is_refused(agent: str, text: str, reason: str) -> None:
    with pytest.raises(ImportFailed, match=reason):
        translate(agent, text, "bad")


def test_procstat_odd_interval_and_unknown_sections_become_comments() -> None:
    source = {
        "agent": {"metrics_collection_interval": 7, "usage_data": False},
        "metrics": {
            "metrics_collected": {
                "procstat": [{"exe": "nginx", "measurement": ["cpu_usage"]}, {"pid_file": "/run/sshd.pid"}],
                "collectd": {},
            }
        },
        "csm": {"service_addresses": ["udp4://127.0.0.1:31000"]},
    }
    rendered, config = _translated("cloudwatch-agent", json.dumps(source))
    procstat = config["inputs"]["procstat"]
    assert procstat["processes"] == [{"exe": "nginx"}, {"pidfile": "/run/sshd.pid"}]
    assert "interval" not in procstat  # 7 s is not an interval we allow: the default is used, and said so
    comments = _comments(rendered)
    assert "not translated: procstat.metrics_collection_interval = 7" in comments
    assert "not translated: procstat.measurement = ['cpu_usage']" in comments
    assert "not translated: agent.usage_data = False" in comments
    assert "not translated: metrics.metrics_collected.collectd" in comments
    assert "not translated: csm section" in comments


@pytest.mark.parametrize(
    ("fmt", "line", "expected"),
    [
        ("%Y-%m-%d %H:%M:%S", "INFO 2026-11-26 10:00:00 started", "2026-11-26T10:00:00+00:00"),
        ("%d/%b/%Y:%H:%M:%S %z", '1.2.3.4 - - [26/Nov/2026:11:00:00 +0100] "GET /"', "2026-11-26T10:00:00+00:00"),
        ("%-m/%-d/%y %-I:%M:%S %p", "at 11/6/26 9:05:00 PM: done", "2026-11-06T21:05:00+00:00"),
    ],
)
def test_timestamp_format_sets_the_record_time(ctx: ComponentContext, fmt: str, line: str, expected: str) -> None:
    entry = {"file_path": "/l/a.log", "log_group_name": "g", "timestamp_format": fmt, "timezone": "UTC"}
    source = {"logs": {"logs_collected": {"files": {"collect_list": [entry]}}}}
    _, config = _translated("cloudwatch-agent", json.dumps(source))
    regex_body, timestamp_body = config["processors"]["a_time"], config["processors"]["a_timestamp"]
    regex = ParseRegex(ParseRegexConfig(**regex_body), ctx)
    timestamp = ParseTimestamp(ParseTimestampConfig(**timestamp_body), ctx)
    records = [{"timestamp": 1.0, "message": line}, {"timestamp": 2.0, "message": "a line without a time"}]
    batch = regex.process(Batch(LOGS, records, nbytes=100))
    assert batch is not None
    batch = timestamp.process(batch)
    assert batch is not None
    first, second = batch.records
    assert datetime.fromtimestamp(first["timestamp"], UTC).isoformat() == expected
    assert "_agent_time" not in first and first["message"] == line
    assert second == {"timestamp": 2.0, "message": "a line without a time"}  # kept as read, no error field


@pytest.mark.parametrize("fmt", ["%H:%M:%S", "%Y %Z"])
def test_untranslatable_timestamp_format_is_a_comment(fmt: str) -> None:
    entry = {"file_path": "/l/a.log", "timestamp_format": fmt}
    rendered, config = _translated(
        "cloudwatch-agent", json.dumps({"logs": {"logs_collected": {"files": {"collect_list": [entry]}}}})
    )
    assert "processors" not in config
    assert f"not translated: timestamp_format = {fmt!r}" in _comments(rendered)


def test_worked_example_in_docs_is_what_the_command_prints() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "migration.md").read_text()
    example = doc.split("## Worked example", 1)[1]
    source = example.split("```json\n", 1)[1].split("```", 1)[0]
    shown = example.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert translate("cloudwatch-agent", source, "amazon-cloudwatch-agent.json") == shown


def test_filters_keep_and_drop_in_order(ctx: ComponentContext) -> None:
    filters = [{"type": "exclude", "expression": "Firefox"}, {"type": "include", "expression": "P(UT|OST)"}]
    entry = {"file_path": "/l/a.log", "log_group_name": "g", "filters": filters}
    _, config = _translated(
        "cloudwatch-agent", json.dumps({"logs": {"logs_collected": {"files": {"collect_list": [entry]}}}})
    )
    first, second = config["processors"]["a_filter1"], config["processors"]["a_filter2"]
    assert first["inputs"] == ["a"] and second["inputs"] == ["a_filter1"]
    assert config["outputs"]["a_cloudwatch"]["inputs"] == ["a_filter2"]
    lines = ["PUT /x Firefox", "POST /y curl", "GET /z curl", "PUT /w wget"]
    batch: Batch | None = Batch(LOGS, [{"timestamp": 1.0, "message": line} for line in lines], nbytes=100)
    for body in (first, second):
        assert batch is not None
        batch = Filter(FilterConfig(**body), ctx).process(batch)
    assert batch is not None
    assert [r["message"] for r in batch.records] == ["POST /y curl", "PUT /w wget"]


def test_cloudwatch_agent_traces_section() -> None:
    traces = {
        "traces_collected": {
            "xray": {"bind_address": "0.0.0.0:2000", "tcp_proxy": {"bind_address": "127.0.0.1:2000"}},
            "otlp": {"grpc_endpoint": "127.0.0.1:4317"},
        },
        "concurrency": 8,
        "local_mode": True,
        "region_override": "us-east-2",
        "proxy_override": "http://127.0.0.1:3128",
        "buffer_size_mb": 3,
        "insecure": False,
    }
    source = {"agent": {"region": "us-west-1"}, "traces": traces}
    rendered, config = _translated("cloudwatch-agent", json.dumps(source))
    assert config["inputs"]["xray"] == {"type": "xray", "listen": "udp:0.0.0.0:2000 tcp:127.0.0.1:2000"}
    assert config["outputs"]["xray_upload"] == {
        "type": "xray",
        "inputs": ["xray"],
        "region": "us-east-2",
        "concurrency": 8,
        "local_mode": True,
        "proxy": "http://127.0.0.1:3128",
        "buffer": {"max_bytes": "3MiB"},
    }
    comments = _comments(rendered)
    assert "not translated: traces.traces_collected.otlp" in comments
    assert "not translated: traces.insecure = False" in comments


def test_entries_our_file_input_cannot_take_become_comments() -> None:
    entries = [
        {"file_path": "C:\\ProgramData\\app.log", "log_group_name": "win"},
        {"file_path": "/l/a.log", "encoding": "iso-2022-jp", "multi_line_start_pattern": "^(?P<x"},
        {"file_path": "/l/b.log", "encoding": "latin1", "filters": [{"type": "include", "expression": "(?P<x"}]},
    ]
    rendered, config = _translated(
        "cloudwatch-agent", json.dumps({"logs": {"logs_collected": {"files": {"collect_list": entries}}}})
    )
    assert sorted(config["inputs"]) == ["a", "b"]
    assert "encoding" not in config["inputs"]["a"] and "multiline" not in config["inputs"]["a"]
    assert config["inputs"]["b"]["encoding"] == "iso8859-1"
    assert "processors" not in config
    comments = _comments(rendered)
    assert "not translated: collect_list file_path 'C:\\\\ProgramData\\\\app.log'" in comments
    assert "not translated: encoding = 'iso-2022-jp' (encoding 'iso-2022-jp' is stateful" in comments
    assert "not translated: multi_line_start_pattern = '^(?P<x'" in comments
    assert "not translated: filters = " in comments


def test_retention_and_class_we_refuse_become_comments() -> None:
    entries = [{"file_path": "/l/a.log", "retention_in_days": 2, "log_group_class": "DELIVERY"}]
    rendered, config = _translated(
        "cloudwatch-agent", json.dumps({"logs": {"logs_collected": {"files": {"collect_list": entries}}}})
    )
    out = config["outputs"]["a_cloudwatch"]
    assert "retention_days" not in out and "log_group_class" not in out
    assert "not translated: retention_in_days = 2" in rendered
    assert "not translated: log_group_class = 'DELIVERY'" in rendered


def test_a_translation_that_does_not_validate_is_written_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from collector.commands import CommandFailed
    from collector_plugins.commands.importers.command import ImportCommand

    source = tmp_path / "cfg.yaml"
    source.write_text("Socket:\n  UDPAddress: not-an-address\n")
    args = argparse.Namespace(agent="xray-daemon", file=str(source), output=None)
    with pytest.raises(CommandFailed) as failed:
        ImportCommand().run(args)
    assert failed.value.exit_status == 2
    assert "the translation does not validate" in failed.value.message
    assert "listen" in failed.value.message
    assert "not-an-address" in capsys.readouterr().out
