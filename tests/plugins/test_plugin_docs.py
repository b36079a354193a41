"""The built-in plugins' declarations agree with pyproject.toml and their READMEs document every option."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from collector.api import SECTIONS, Component, Output, OutputConfig
from collector.registry import entry_point_type

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["node_collector.plugins"]
OURS = sorted(ENTRY_POINTS)


def load(type_name: str) -> type[Component]:
    module, _, name = ENTRY_POINTS[type_name].partition(":")
    cls = getattr(importlib.import_module(module), name)
    assert cls.type_name == entry_point_type(type_name)
    return cls


@pytest.mark.parametrize("type_name", OURS)
def test_readme_documents_every_option(type_name: str) -> None:
    cls = load(type_name)
    module_file = Path(importlib.import_module(cls.__module__).__file__ or "")
    readme = module_file.with_suffix(".md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", readme, flags=re.M))
    own = set(cls.Config.model_fields)
    if issubclass(cls, Output):
        # buffer, batch, retry, concurrency, dead_letter: one page documents them for every output.
        own -= set(OutputConfig.model_fields) - {"type", "inputs"}
        assert "docs/outputs.md" in readme
    assert own <= documented
    assert "## What it counts and logs" in readme
    blocks = re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
    assert blocks
    for block in blocks:
        document = yaml.safe_load(block)
        assert set(document) <= set(SECTIONS)
        for body in (b for section in document.values() for b in section.values()):
            assert body["type"] == cls.type_name
            cls.Config.model_validate(body)


@pytest.mark.parametrize("type_name", OURS)
def test_schema_is_complete(type_name: str) -> None:
    cls = load(type_name)
    schema = cls.Config.model_json_schema()
    assert schema["additionalProperties"] is False
    for name, field in cls.Config.model_fields.items():
        assert field.description and field.examples, f"{type_name}.{name}"
    assert cls.description and "\n" not in cls.description
