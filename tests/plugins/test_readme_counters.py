"""Every plugin README's `- Counters:` bullets name exactly the counters the plugin exposes.

The counters are what `/metrics` shows as `collector_component_value{name=...}` and `/status` lists: each
plugin is built from its README's first example (with the options that make conditional counters appear, and a
listening input started on loopback for every transport it takes) and its `counters()` read. The names
documented are the backticked words of the `What it counts and logs` section's bullets starting
`- Counters`, without what stands in parentheses (notes that may name options).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.api import ComponentContext, HostFacts
from collector.events import LOGS, Batch
from collector.testing import input_context, wait_for
from collector_plugins.common.listening.listeners import ListeningInput

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["node_collector.plugins"]

# Options under which counters that exist only in some configurations appear (by entry-point name).
FULL_OPTIONS: dict[str, dict[str, Any]] = {
    "docker": {"ecs_metadata_endpoint": "http://127.0.0.1:9"},
    "emf": {"emit": ["logs", "metrics"]},
    "outputs.socket": {"address": "udp://127.0.0.1:9"},  # the output; `send_errors` exists once its UDP socket is open
}
# Outputs whose counters appear once they sent something (a datagram to a loopback port: no peer needed).
SEND_ONE = {"outputs.socket"}
LOOPBACK = {"tcp": "tcp://127.0.0.1:0", "udp": "udp://127.0.0.1:0"}


def documented_counters(readme: str) -> set[str]:
    found = re.search(r"^## What it counts and logs\n(.*?)(?=^## |\Z)", readme, flags=re.S | re.M)
    assert found, "no `## What it counts and logs` section"
    lines = found.group(1).splitlines()
    names: set[str] = set()
    for i, line in enumerate(lines):
        if not line.startswith("- Counters"):
            continue
        text = line
        for more in lines[i + 1 :]:
            if not more.startswith("  "):
                break
            text += " " + more
        while True:  # notes in parentheses, innermost first
            stripped = re.sub(r"\([^()]*\)", "", text)
            if stripped == text:
                break
            text = stripped
        names |= set(re.findall(r"`([a-z_0-9]+)`", text))
    return names


async def exposed_counters(entry_point: str, tmp_path: Path) -> tuple[set[str], str]:
    module, _, name = ENTRY_POINTS[entry_point].partition(":")
    cls = getattr(importlib.import_module(module), name)
    readme = (Path(inspect.getfile(cls)).parent / "README.md").read_text()
    example = yaml.safe_load(re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)[0])
    body = dict(next(b for section in example.values() for b in section.values()))
    body.update(FULL_OPTIONS.get(entry_point, {}))
    listening = issubclass(cls, ListeningInput)
    schemes = [s for s in getattr(cls.Config, "listen_schemes", ()) if s in LOOPBACK]
    if listening:
        body["listen"] = [LOOPBACK[s] for s in schemes]
    config = cls.Config.model_validate(body)
    ctx = ComponentContext("c", logging.getLogger("test.readme_counters"), tmp_path, HostFacts("h"))
    component = cls(config, ctx)
    if entry_point in SEND_ONE:
        await component.start()
        try:
            await component.write(Batch(LOGS, [{"timestamp": 0.0, "message": "x"}], 1))
            return set(component.counters()), readme
        finally:
            await component.stop()
    if not listening:
        return set(component.counters()), readme
    # A listening input's connection and datagram counters exist while it serves: run it on loopback.
    await component.start()
    run_ctx = input_context("c", tmp_path, _discard)
    task = asyncio.create_task(component.run(run_ctx))
    try:
        listeners = component.listeners
        streams, datagrams = "tcp" in schemes, "udp" in schemes
        await wait_for(
            lambda: (not streams or listeners.server is not None) and (not datagrams or bool(listeners.readers))
        )
        return set(component.counters()), readme
    finally:
        run_ctx.stopping.set()
        await asyncio.wait_for(task, 10)
        await component.stop()


async def _discard(batch: Batch) -> None:
    pass


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
async def test_the_readme_names_every_counter_and_only_those(entry_point: str, tmp_path: Path) -> None:
    exposed, readme = await exposed_counters(entry_point, tmp_path)
    documented = documented_counters(readme)
    assert sorted(exposed - documented) == [], "exposed but not in the README's `- Counters` bullets"
    assert sorted(documented - exposed) == [], "in the README's `- Counters` bullets but not exposed"


def test_the_parser_reads_bullets_and_skips_notes() -> None:
    readme = (
        "## What it counts and logs\n\n- Counters: `a` (times `an_option` was hit), `b`,\n  `c`.\n"
        "- Loss ledger: `d`.\n- Counters also `e` for UDP.\n\n## Next\n\n- Counters: `f`\n"
    )
    assert documented_counters(readme) == {"a", "b", "c", "e"}
