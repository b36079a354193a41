"""Plugin discovery: type names are unique per section, and entry points may name the section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import ClassVar, Literal

import pytest

from collector.api import Input, InputConfig, Output, OutputConfig
from collector.config import ConfigError, parse_config
from collector.defaults import PLUGIN_ENTRY_POINT_GROUP
from collector.registry import DuplicatePluginError, Registry, entry_point_type, load_registry


class _In(Input):
    type_name: ClassVar[str] = "same"

    class Config(InputConfig):
        type: Literal["same"]


class _Out(Output):
    type_name: ClassVar[str] = "same"

    class Config(OutputConfig):
        type: Literal["same"]


def test_an_input_and_an_output_may_share_a_type_name() -> None:
    registry = Registry()
    registry.add(_In)
    registry.add(_Out)
    assert registry.in_section("inputs") == {"same": _In}
    assert registry.in_section("outputs") == {"same": _Out}
    assert registry.in_section("processors") == {}


def test_entry_point_names_may_be_qualified_by_section() -> None:
    assert entry_point_type("outputs.file") == "file"
    assert entry_point_type("generator") == "generator"
    assert entry_point_type("acme.thing") == "acme.thing"  # not a section: the whole name is the type


def test_the_built_in_file_output_is_registered_under_its_section() -> None:
    registry = load_registry()
    assert registry.in_section("outputs")["file"].__name__ == "FileOutput"
    assert "file" not in registry.broken


# Every collector process loads the registry; these are paid for only by a component that uses them.
_LOADED_ONLY_WHEN_USED = (
    "aiobotocore",
    "botocore.session",
    "botocore.credentials",
    "botocore.utils",
    "pyarrow",
    "psutil",
)


def test_loading_the_registry_imports_no_aws_sdk_pyarrow_or_psutil() -> None:
    # A fresh interpreter: this test process has long since imported all of them.
    code = (
        "import json, sys\n"
        "from collector.registry import load_registry\n"
        "registry = load_registry()\n"
        "print(json.dumps({'outputs': sorted(registry.in_section('outputs')),"
        " 'inputs': sorted(registry.in_section('inputs')), 'broken': sorted(registry.broken),"
        " 'modules': sorted(sys.modules)}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = json.loads(done.stdout)
    # The plugins that use them were really loaded (so their absence below is not from a plugin left out).
    assert {"cloudwatch_logs", "cloudwatch_metrics", "firehose", "kinesis", "s3", "xray"} <= set(loaded["outputs"])
    assert {"host_metrics", "xray"} <= set(loaded["inputs"])
    assert loaded["broken"] == []
    imported = [m for m in loaded["modules"] if any(m == p or m.startswith(p + ".") for p in _LOADED_ONLY_WHEN_USED)]
    assert imported == []


# -- two distributions registering one section and type --------------------------------------------------

_MODULE = """
from typing import ClassVar, Literal
from pydantic import Field
from collector.api import ALL_KINDS, Output, OutputConfig, Processor, ProcessorConfig


class TwinConfig(ProcessorConfig):
    type: Literal["twin"] = Field(description="Plugin type.", examples=["twin"])


class Twin(Processor):
    type_name = "twin"
    description = "Passes batches on."
    Config = TwinConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS

    def process(self, batch):
        return batch


class FileConfig(OutputConfig):
    type: Literal["file"] = Field(description="Plugin type.", examples=["file"])


class File(Output):
    type_name = "file"
    description = "Another file output."
    Config = FileConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS

    async def write(self, batch):
        return None
"""


def _distribution(root: Path, name: str, module: str, entry_points: dict[str, list[str]]) -> None:
    """An installed distribution as importlib.metadata finds it: `<name>-1.0.dist-info` beside its module."""
    (root / f"{module}.py").write_text(_MODULE)
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    sections = [f"[{group}]\n" + "".join(f"{line}\n" for line in lines) for group, lines in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(sections))


def test_a_type_registered_by_two_distributions_is_rejected_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = "test_registry.duplicates"
    _distribution(tmp_path, "acme-one", "acme_twin_one", {group: ["twin = acme_twin_one:Twin"]})
    _distribution(tmp_path, "acme-two", "acme_twin_two", {group: ["twin = acme_twin_two:Twin"]})
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry(group)
    # Neither is used: which one "won" would depend on the order of sys.path.
    assert registry.in_section("processors") == {}
    why = registry.broken["twin"]
    assert "processor type `twin`" in why
    assert "acme-one (acme_twin_one:Twin)" in why and "acme-two (acme_twin_two:Twin)" in why


def test_a_third_party_plugin_cannot_shadow_a_built_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _distribution(
        tmp_path, "acme-file", "acme_file_output", {PLUGIN_ENTRY_POINT_GROUP: ["outputs.file = acme_file_output:File"]}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    assert "file" not in registry.in_section("outputs")
    assert registry.in_section("inputs")["file"].__name__ == "FileInput"  # the other section is untouched
    why = registry.broken["file"]
    assert "node-collector (collector_plugins.outputs.file.output:FileOutput)" in why
    assert "acme-file (acme_file_output:File)" in why
    # A config using the type fails validation with that reason; one that does not still loads.
    with pytest.raises(ConfigError) as failed:
        parse_config(
            "inputs: {g: {type: generator, count: 1}}\noutputs: {f: {type: file, inputs: [g], path: /tmp/x}}\n",
            "c.yaml",
            registry,
            environ={},
        )
    assert "acme-file" in str(failed.value) and "node-collector" in str(failed.value)
    parse_config(
        "inputs: {g: {type: generator, count: 1}}\noutputs: {o: {type: stdout, inputs: [g]}}\n",
        "c.yaml",
        registry,
        environ={},
    )


def test_adding_a_second_class_for_a_section_and_type_raises() -> None:
    registry = Registry()
    registry.add(_Out)
    registry.add(_Out)  # the same class again (one distribution seen twice) is no conflict

    class _Other(Output):
        type_name: ClassVar[str] = "same"

        class Config(OutputConfig):
            type: Literal["same"]

    with pytest.raises(DuplicatePluginError, match="output type `same` is registered twice"):
        registry.add(_Other)
    assert registry.in_section("outputs") == {"same": _Out}
