"""Warnings about valid configs (collector/config/advice.py): metrics that would reach CloudWatch twice."""

from __future__ import annotations

import pytest

from collector.config import parse_config

CWL = "type: cloudwatch_logs, log_group: /app, log_stream: s"
CWM = "type: cloudwatch_metrics, namespace: App"


def warnings_of(body: str) -> list[str]:
    config = parse_config("data_dir: ./state\n" + body, "c.yaml")
    return [w.format() for w in config.warnings]


def test_emf_documents_to_cloudwatch_logs_and_metrics_to_cloudwatch_metrics_warns_with_the_line() -> None:
    found = warnings_of(
        "inputs:\n"
        "  apps: {type: emf, emit: [logs, metrics]}\n"
        "outputs:\n"
        f"  cwl: {{{CWL}, inputs: [apps]}}\n"
        f"  cwm: {{{CWM}, inputs: [apps]}}\n"
    )
    assert len(found) == 1
    assert found[0].startswith("c.yaml:3:3: inputs.apps: the metrics of `apps` reach CloudWatch twice")
    assert "through `cwl` (cloudwatch_logs" in found[0] and "through `cwm` (cloudwatch_metrics)" in found[0]
    assert "(hint: route `apps`'s metrics to one of the two" in found[0]


def test_metrics_through_metrics_to_emf_and_put_metric_data_warn() -> None:
    found = warnings_of(
        "inputs:\n"
        "  statsd: {type: statsd}\n"
        "processors:\n"
        "  tag: {type: add_fields, inputs: [statsd], fields: {env: prod}}\n"
        "  emf: {type: metrics_to_emf, inputs: [tag]}\n"
        "outputs:\n"
        f"  cwl: {{{CWL}, inputs: [emf]}}\n"
        f"  cwm: {{{CWM}, inputs: [tag]}}\n"
    )
    assert len(found) == 1 and "inputs.statsd: the metrics of `statsd` reach CloudWatch twice" in found[0]


@pytest.mark.parametrize(
    "body",
    [
        # The EMF documents to CloudWatch Logs only: published once.
        f"inputs:\n  apps: {{type: emf}}\noutputs:\n  cwl: {{{CWL}, inputs: [apps]}}\n",
        # Metrics to PutMetricData, plain logs of another source to CloudWatch Logs.
        "inputs:\n  apps: {type: emf, emit: [metrics]}\n  lines: {type: stdin}\n"
        f"outputs:\n  cwl: {{{CWL}, inputs: [lines]}}\n  cwm: {{{CWM}, inputs: [apps]}}\n",
        # Metrics as EMF to CloudWatch Logs, and to a file: once.
        "inputs:\n  statsd: {type: statsd}\nprocessors:\n  emf: {type: metrics_to_emf, inputs: [statsd]}\n"
        f"outputs:\n  cwl: {{{CWL}, inputs: [emf]}}\n  f: {{type: file, inputs: [statsd], path: m.jsonl}}\n",
    ],
)
def test_metrics_published_once_do_not_warn(body: str) -> None:
    assert warnings_of(body) == []
