"""Plugin discovery: type names are unique per section, and entry points may name the section."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import ClassVar, Literal

from collector.api import Input, InputConfig, Output, OutputConfig
from collector.registry import Registry, entry_point_type, load_registry


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
