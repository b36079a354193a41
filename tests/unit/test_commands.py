"""CLI commands from plugins: the core imports no plugin, and command plugins are found, checked and loaded lazily."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import collector
from collector.cli import CORE_COMMANDS, main
from collector.commands import discover_commands
from collector.defaults import COMMAND_ENTRY_POINT_GROUP

COLLECTOR = Path(collector.__file__).parent


def _plugin_imports(source: str) -> list[str]:
    """Every import of `collector_plugins` in `source`, wherever it is (module level, functions, classes)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "collector_plugins"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "collector_plugins":
                found.append(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            # importlib.import_module("collector_plugins...") / __import__("collector_plugins...")
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            value = node.args[0].value
            is_plugin = isinstance(value, str) and value.split(".")[0] == "collector_plugins"
            if name in ("import_module", "__import__") and is_plugin:
                found.append(str(value))
    return found


def test_the_scan_finds_imports_at_every_level() -> None:
    source = (
        "import collector_plugins\n"
        "def f():\n    from collector_plugins.outputs import s3\n"
        "class C:\n    def g(self):\n        import collector_plugins.common.trace_cli as t\n"
        "import importlib\nimportlib.import_module('collector_plugins.inputs.stdin')\n"
        "from collector import api\nimport collector_pluginsx\n"
    )
    assert sorted(_plugin_imports(source)) == [
        "collector_plugins",
        "collector_plugins.common.trace_cli",
        "collector_plugins.inputs.stdin",
        "collector_plugins.outputs",
    ]


def test_no_module_of_the_core_imports_a_plugin() -> None:
    files = sorted(COLLECTOR.rglob("*.py"))
    assert COLLECTOR / "cli.py" in files and COLLECTOR / "config" / "loader.py" in files
    offenders = {
        str(path.relative_to(COLLECTOR)): imports
        for path in files
        if (imports := _plugin_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


# -- third-party command plugins ---------------------------------------------------------------------------

_MODULE = """
import argparse


class Hello:
    name = "hello"
    help = "say hello"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--who", default="world")

    def run(self, args: argparse.Namespace) -> int:
        print(f"hello {args.who}")
        return 0 if args.who != "nobody" else 3


class Misnamed(Hello):
    name = "something-else"


class NotACommand:
    name = "half"


"""


def _distribution(root: Path, name: str, module: str, body: str, entry_points: dict[str, list[str]]) -> None:
    """An installed distribution as importlib.metadata finds it: `<name>-1.0.dist-info` beside its module."""
    (root / f"{module}.py").write_text(body)
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    sections = [f"[{group}]\n" + "".join(f"{line}\n" for line in lines) for group, lines in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(sections))


def test_a_command_registered_by_two_distributions_is_rejected_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = "test_commands.duplicates"
    _distribution(tmp_path, "acme-one", "acme_cmd_one", _MODULE, {group: ["hello = acme_cmd_one:Hello"]})
    _distribution(tmp_path, "acme-two", "acme_cmd_two", _MODULE, {group: ["hello = acme_cmd_two:Hello"]})
    monkeypatch.syspath_prepend(str(tmp_path))
    table = discover_commands(group=group)
    assert table.found == {}  # neither: which one "won" would depend on the order of sys.path
    why = table.broken["hello"]
    assert "acme-one (acme_cmd_one:Hello)" in why and "acme-two (acme_cmd_two:Hello)" in why
    assert "uninstall all but one" in why
    assert "acme_cmd_one" not in sys.modules and "acme_cmd_two" not in sys.modules  # found, never imported


def test_a_plugin_command_cannot_take_a_core_command_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    group = "test_commands.core_names"
    _distribution(tmp_path, "acme-run", "acme_cmd_run", _MODULE, {group: ["run = acme_cmd_run:Hello"]})
    monkeypatch.syspath_prepend(str(tmp_path))
    table = discover_commands(reserved=CORE_COMMANDS, group=group)
    assert "run" not in table.found
    assert "acme-run (acme_cmd_run:Hello)" in table.broken["run"] and "core command" in table.broken["run"]


def test_broken_command_plugins_are_reported_and_the_others_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _distribution(
        tmp_path,
        "acme-cmds",
        "acme_cmds",
        _MODULE,
        {
            COMMAND_ENTRY_POINT_GROUP: [
                "hello = acme_cmds:Hello",
                "missing = acme_cmds_gone:Command",
                "something = acme_cmds:Misnamed",
                "half = acme_cmds:NotACommand",
            ]
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["hello", "--who", "there"]) == 0
    assert capsys.readouterr().out == "hello there\n"
    assert main(["hello", "--who", "nobody"]) == 3  # the command's own exit status

    assert main(["missing"]) == 1
    err = capsys.readouterr().err
    assert "`missing` is not available" in err and "acme-cmds (acme_cmds_gone:Command) failed to load" in err
    assert "ModuleNotFoundError" in err
    assert main(["something"]) == 1
    assert "differs from the command's name 'something-else'" in capsys.readouterr().err
    assert main(["half"]) == 1
    assert "is not a collector command" in capsys.readouterr().err

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "hello" in out and "say hello" in out
    assert "broken command plugins (not available):" in out
    for name in ("missing", "something", "half"):
        assert f"  {name}: " in out
    assert main(["version"]) == 0  # the core is untouched


def test_commands_are_imported_only_when_run_or_listed() -> None:
    # A fresh interpreter: this test process has long since imported the plugins.
    code = (
        "import contextlib, io, json, sys\n"
        "from collector.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['version'])\n"
        "after_version = sorted(m for m in sys.modules if m.startswith('collector_plugins'))\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        "after_help = sorted(m for m in sys.modules if m.startswith('collector_plugins'))\n"
        "print(json.dumps({'version': after_version, 'help': after_help}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded = json.loads(done.stdout)
    assert loaded["version"] == []
    assert {
        "collector_plugins.common.trace_cli",
        "collector_plugins.outputs.s3_athena",
        "collector_plugins.inputs.filetail.status",
    } <= set(loaded["help"])
    # Listing the commands does not import the outputs and inputs they belong to (nor the AWS SDK).
    assert "collector_plugins.outputs.s3" not in loaded["help"]


def test_the_built_in_commands_are_entry_points_that_load() -> None:
    table = discover_commands(reserved=CORE_COMMANDS)
    assert {"trace", "athena-ddl", "status"} <= set(table.found)
    assert all(ep.value.startswith("collector_plugins.") for name, ep in table.found.items() if name != "chaos-count")
    loaded = table.load_all()
    assert table.broken == {}
    assert {name: command.name for name, command in loaded.items()} == {name: name for name in loaded}
