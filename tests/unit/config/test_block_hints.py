"""A validator that checks a whole block (no single option to describe) still gives a hint of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.config import ConfigError, load_config

PROM = {"type": "prometheus", "targets": ["127.0.0.1:9"]}
FILE = {"type": "file", "include": ["/tmp/x.log"]}
SINK = {"type": "blackhole", "inputs": ["*"]}

# (what is wrong, the input or processor section entry, the output's buffer)
BLOCKS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "buffer option of the other type": ({}, {"buffer": {"type": "memory", "fsync": "always"}}),
    "max_events on a disk buffer": ({}, {"buffer": {"type": "disk", "max_events": 10}}),
    "multiline with both patterns": ({"inputs": {"f": {**FILE, "multiline": {"start": "a", "continuation": "b"}}}}, {}),
    "container format, other encoding": ({"inputs": {"f": {**FILE, "format": "docker", "encoding": "latin-1"}}}, {}),
    "both passwords": (
        {"inputs": {"p": {**PROM, "basic_auth": {"username": "u", "password": "a", "password_file": "/x"}}}},
        {},
    ),
    "timeout over interval": ({"inputs": {"p": {**PROM, "interval": "5s", "timeout": "10s"}}}, {}),
    "two bearer tokens": ({"inputs": {"p": {**PROM, "bearer_token": "a", "bearer_token_file": "/x"}}}, {}),
    "two operators": (
        {
            "processors": {
                "f": {"type": "filter", "inputs": ["g"], "keep": [{"field": "a", "equals": "b", "exists": True}]}
            }
        },
        {},
    ),
    "two process selectors": (
        {"inputs": {"h": {"type": "host_metrics", "processes": [{"exe": "a", "pattern": "b"}]}}},
        {},
    ),
}


@pytest.mark.parametrize(("sections", "output"), BLOCKS.values(), ids=BLOCKS.keys())
def test_a_block_error_has_a_hint(tmp_path: Path, sections: dict[str, Any], output: dict[str, Any]) -> None:
    config: dict[str, Any] = {"data_dir": str(tmp_path), "inputs": {"g": {"type": "generator"}}}
    for section, components in sections.items():
        config.setdefault(section, {}).update(components)
    config["outputs"] = {"o": {**SINK, **output}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = [issue.format() for issue in caught.value.issues]
    assert lines
    for line in lines:
        assert "(hint: " in line and " | hint: " not in line, line
