"""The installed distribution: import names that cannot collide, and built-ins found as entry points."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import distribution, entry_points
from pathlib import Path

from collector.defaults import PLUGIN_ENTRY_POINT_GROUP


def run_outside_checkout(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # From another directory, so the checkout's own folders are not on sys.path.
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False)


def test_no_top_level_plugins_package_is_installed(tmp_path: Path) -> None:
    assert run_outside_checkout("import plugins", tmp_path).returncode != 0
    ok = run_outside_checkout("import collector, collector_plugins.inputs.generator.input", tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_builtins_are_registered_as_entry_points() -> None:
    names = {ep.name: ep.value for ep in entry_points(group=PLUGIN_ENTRY_POINT_GROUP)}
    assert names["generator"] == "collector_plugins.inputs.generator.input:Generator"
    assert all(value.startswith("collector_plugins.") for value in names.values())
    assert distribution("node-collector").entry_points.select(group="console_scripts")["collector"].value == (
        "collector.cli:main"
    )
