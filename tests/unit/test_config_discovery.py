"""One rule for which config a command reads (collector/commands.py `find_config`), each step of it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from collector.cli import build_parser
from collector.commands import CommandFailed, add_config_argument, find_config, load_config
from collector.defaults import CONFIG_PATH


def test_dash_c_comes_first(tmp_path: Path) -> None:
    (tmp_path / "collector.yaml").write_text("")
    env = {"COLLECTOR_CONFIG": "/from/env.yaml"}
    assert find_config("/given.yaml", env, tmp_path, "/sys.yaml") == "/given.yaml"


def test_then_the_environment_even_when_its_file_is_missing(tmp_path: Path) -> None:
    # A name the operator gave is never swapped for another file: its absence is reported.
    (tmp_path / "collector.yaml").write_text("")
    assert find_config(None, {"COLLECTOR_CONFIG": "/from/env.yaml"}, tmp_path, "/sys.yaml") == "/from/env.yaml"


def test_an_empty_variable_is_not_set(tmp_path: Path) -> None:
    assert find_config(None, {"COLLECTOR_CONFIG": ""}, tmp_path, "/sys.yaml") == "/sys.yaml"


def test_then_collector_yaml_in_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / "collector.yaml").write_text("")
    assert find_config(None, {}, tmp_path, "/sys.yaml") == str(tmp_path / "collector.yaml")


def test_a_directory_named_collector_yaml_is_not_a_config(tmp_path: Path) -> None:
    (tmp_path / "collector.yaml").mkdir()
    assert find_config(None, {}, tmp_path, "/sys.yaml") == "/sys.yaml"


def test_then_the_system_config(tmp_path: Path) -> None:
    assert find_config(None, {}, tmp_path) == CONFIG_PATH == "/etc/collector/collector.yaml"


def test_the_working_directory_is_the_process_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLLECTOR_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_config() == CONFIG_PATH
    (tmp_path / "collector.yaml").write_text("")
    assert find_config() == "collector.yaml"
    monkeypatch.setenv("COLLECTOR_CONFIG", "/env.yaml")
    assert find_config() == "/env.yaml"
    assert find_config("-c.yaml") == "-c.yaml"


def test_the_option_leaves_the_choice_to_the_rule() -> None:
    parser = argparse.ArgumentParser()
    add_config_argument(parser)
    assert parser.parse_args([]).config is None
    assert "COLLECTOR_CONFIG" in parser.format_help()


def test_every_core_command_with_a_config_uses_the_rule() -> None:
    parser = build_parser()
    for argv in (["run"], ["validate"], ["dlq", "list"], ["dlq", "show", "x"], ["dlq", "replay", "x"]):
        assert parser.parse_args(argv).config is None, argv  # main() fills it in with find_config


def test_a_plugin_commands_load_config_applies_the_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLLECTOR_CONFIG", str(tmp_path / "nowhere.yaml"))
    with pytest.raises(CommandFailed) as info:
        load_config(None)
    assert info.value.exit_status == 2
    assert "nowhere.yaml" in info.value.message
