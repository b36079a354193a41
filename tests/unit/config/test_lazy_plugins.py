"""`collector run` imports only the plugins its config names (issue 16: RSS of the default config).

`load_config_lazily` loads the entry points of the type names in the file; a file that does not
validate that way is validated against every plugin, so its errors read as `collector validate`'s.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collector.config import ConfigError, load_config, load_config_lazily
from collector.registry import load_registry

CONFIG = """\
data_dir: {data}
api: {{enabled: false}}
inputs:
  gen: {{type: generator, count: 1}}
  files: {{type: file, include: ["{data}/*.log"]}}
outputs:
  sink: {{type: blackhole, inputs: [gen, files]}}
"""


def test_only_loads_the_entry_points_of_the_named_types() -> None:
    registry = load_registry(only={"generator", "file"})
    assert set(registry.plugins) == {("inputs", "generator"), ("inputs", "file"), ("outputs", "file")}


def test_a_config_loaded_lazily_is_the_one_loaded_against_every_plugin(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(data=tmp_path))
    config, registry = load_config_lazily(path)
    assert {name for _, name in registry.plugins} == {"generator", "file", "blackhole"}
    full = load_config(path, load_registry())
    assert config.graph.components.keys() == full.graph.components.keys()
    assert {n: s.config for n, s in config.graph.components.items()} == {
        n: s.config for n, s in full.graph.components.items()
    }


def test_a_config_that_fails_lazily_reports_what_validate_reports(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(data=tmp_path).replace("type: blackhole", "type: blackhol"))
    with pytest.raises(ConfigError) as lazily:
        load_config_lazily(path)
    with pytest.raises(ConfigError) as fully:
        load_config(path, load_registry())
    assert lazily.value.format() == fully.value.format()
    assert "blackhole" in lazily.value.format()  # the did-you-mean needs every plugin's name


def test_the_run_path_imports_no_plugin_the_config_does_not_name(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(data=tmp_path))
    code = textwrap.dedent(
        f"""\
        import json, sys
        from collector.config import load_config_lazily
        load_config_lazily({str(path)!r})
        print(json.dumps(sorted(m for m in sys.modules if m.startswith("collector_plugins."))))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    plugins = {m.split(".")[2] for m in json.loads(done.stdout) if m.count(".") >= 2}
    sections = {".".join(m.split(".")[1:3]) for m in json.loads(done.stdout) if m.count(".") >= 2}
    assert {"inputs.generator", "inputs.file", "outputs.blackhole"} <= sections
    assert not {"outputs.s3", "outputs.cloudwatch_logs", "inputs.syslog", "inputs.statsd"} & sections, plugins
