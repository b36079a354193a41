"""Every example of docs/alerting.md is valid: rule files load, configs validate with the plugins' schemas."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from collector.config.loader import parse_config
from collector.registry import load_registry
from collector_plugins.common.alerting.rules import RULE_TYPES, load_rule_file

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)


def test_every_rule_type_has_an_example() -> None:
    types = {r["type"] for b in BLOCKS for r in (yaml.safe_load(b).get("rules") or [])}
    types |= {
        r["type"] for b in BLOCKS for o in (yaml.safe_load(b).get("outputs") or {}).values() for r in o.get("rules", [])
    }
    assert types == set(RULE_TYPES)


@pytest.mark.parametrize("block", [b for b in BLOCKS if yaml.safe_load(b).get("rules")])
def test_rule_file_examples_load(block: str, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(block)
    assert load_rule_file(path)


@pytest.mark.parametrize("block", [b for b in BLOCKS if yaml.safe_load(b).get("outputs")])
def test_output_examples_validate(block: str) -> None:
    registry = load_registry()
    doc = yaml.safe_load(block)
    for body in doc["outputs"].values():
        cls = registry.plugins[("outputs", body["type"])]
        cls.Config.model_validate(body)


def test_the_complete_configuration_validates(tmp_path: Path) -> None:
    full = next(b for b in BLOCKS if b.startswith("data_dir:"))
    text = full.replace("/var/lib/collector", str(tmp_path))
    config = parse_config(text, "alerting.md")
    assert {"alerting", "notes", "slack"} <= set(config.graph.components)
