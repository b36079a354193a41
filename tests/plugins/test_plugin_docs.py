"""The built-in plugins' declarations agree with pyproject.toml, docs/plugins.md and their READMEs.

Each plugin's README.md (in its folder) documents every option; docs/plugins.md has one row per entry point.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import tomllib
from pathlib import Path

import pytest
import yaml

from collector.api import SECTIONS, Component, Output, OutputConfig
from collector.registry import entry_point_type, load_registry

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
    readme = (module_file.parent / "README.md").read_text()
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


DOCS_TABLE = ROOT / "docs" / "plugins.md"
ROW = re.compile(r"^\| \[`([a-z_0-9]+)`\]\(([^)]+)\) \| (input|processor|output) \|", re.M)


def test_the_docs_table_lists_every_entry_point_with_its_folder_readme() -> None:
    # docs/plugins.md keeps its hand-written "what" column; its (type, section, link) rows must be the entry points.
    registry = load_registry()
    wanted = {}
    for (section, type_name), cls in registry.plugins.items():
        if not cls.__module__.startswith("collector_plugins."):
            continue
        readme = Path(inspect.getfile(cls)).parent / "README.md"
        link = os.path.relpath(readme, DOCS_TABLE.parent)
        wanted[(type_name, section.removesuffix("s"))] = link
    rows = {(name, section): link for name, link, section in ROW.findall(DOCS_TABLE.read_text())}
    missing = [
        f"| [`{t}`]({link}) | {s} | <what it does> |" for (t, s), link in sorted(wanted.items()) if (t, s) not in rows
    ]
    assert not missing, "docs/plugins.md: add a row per plugin to the table:\n" + "\n".join(missing)
    extra = sorted(f"{s} {t}" for t, s in rows if (t, s) not in wanted)
    assert not extra, f"docs/plugins.md lists plugins no entry point declares: {extra}"
    wrong = {key: (rows[key], link) for key, link in wanted.items() if rows[key] != link}
    assert not wrong, f"docs/plugins.md links (written, the plugin folder's README.md): {wrong}"
    for link in rows.values():
        assert (DOCS_TABLE.parent / link).is_file(), link
