"""Every configuration in docs/fleet.md validates with the installed `collector validate`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, child_env, cli

FLEET = REPO / "docs" / "fleet.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", FLEET.read_text(), flags=re.S)
ENV = {"KAFKA_PASSWORD": "pw", "FORWARD_SHARED_KEY": "key"}


def test_the_page_has_the_topologies() -> None:
    names = [block.splitlines()[0] for block in BLOCKS]
    assert names.count("# agent.yaml: every node") == 3 and "# aggregator.yaml: each aggregator" in names


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_each_fleet_config_validates(index: int, tmp_path: Path) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text(BLOCKS[index])
    result = cli("validate", "-c", str(config), env=child_env(**ENV))
    assert result.returncode == 0, BLOCKS[index] + result.stdout + result.stderr
