"""One test over every installed plugin: declaration, docs, schema, lifecycle."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
import typing
from pathlib import Path

import pytest
import yaml

from collector.api import SECTIONS, Component, Input, InputConfig, Output, OutputConfig, Processor, ProcessorConfig
from collector.events import LOGS, METRICS, TRACES, Batch, Metric
from collector.registry import load_registry
from collector.testing import component_context, input_context
from tests.contract.peers import AWS_PEERS, LOCAL_PEERS, OTHER_PEERS, against_moto

REGISTRY = load_registry()
# (type name, class) per registered plugin; an input and an output may share a type name.
PLUGINS = [(type_name, cls) for (_, type_name), cls in sorted(REGISTRY.plugins.items())]
IDS = [f"{section}.{type_name}" for section, type_name in sorted(REGISTRY.plugins)]
CONFIG_BASE = {Input: InputConfig, Processor: ProcessorConfig, Output: OutputConfig}
# Recent timestamps: destinations refuse data from 1970 (CloudWatch Logs takes at most 14 days back).
SAMPLE = {
    LOGS: lambda: [
        {"timestamp": time.time() - 1, "message": '{"a": 1}'},
        {"timestamp": time.time(), "message": b"raw"},
    ],
    METRICS: lambda: [Metric("m", "gauge", 1.0, {"k": "v"}, time.time())],
    TRACES: lambda: [
        {
            "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
            "id": "53995c3f42cd8ad8",
            "name": "s",
            "start_time": time.time() - 1,
            "end_time": time.time(),
        }
    ],
}


def test_plugins_load() -> None:
    assert REGISTRY.broken == {}
    assert len(PLUGINS) >= 9


def readme_examples(cls: type[Component]) -> list[dict]:
    readme = Path(inspect.getfile(cls)).parent / "README.md"
    assert readme.exists(), f"{cls.type_name}: missing {readme} in its folder"
    blocks = re.findall(r"```yaml\n(.*?)```", readme.read_text(), flags=re.S)
    found = []
    for block in blocks:
        document = yaml.safe_load(block) or {}
        for section in SECTIONS:
            for body in (document.get(section) or {}).values():
                if isinstance(body, dict) and body.get("type") == cls.type_name:
                    found.append(body)
    return found


@pytest.mark.parametrize(("type_name", "cls"), PLUGINS, ids=IDS)
def test_declaration(type_name: str, cls: type[Component]) -> None:
    section_base = next(base for base in CONFIG_BASE if issubclass(cls, base))
    assert issubclass(cls.Config, CONFIG_BASE[section_base])
    assert cls.description and not cls.description.endswith("\n")
    type_field = cls.Config.model_fields["type"]
    assert typing.get_args(type_field.annotation) == (type_name,)
    for name, field in cls.Config.model_fields.items():
        assert field.description, f"{type_name}.{name} has no description"
        assert field.examples, f"{type_name}.{name} has no example"
    if issubclass(cls, Input):
        assert cls.emits or cls.emitted_kinds is not Component.emitted_kinds
    else:
        assert cls.accepts


@pytest.mark.parametrize(("type_name", "cls"), PLUGINS, ids=IDS)
def test_readme_examples_validate(type_name: str, cls: type[Component]) -> None:
    examples = readme_examples(cls)
    assert examples, f"{type_name}: its README has no yaml example configuring it"
    for body in examples:
        cls.Config.model_validate(body)


@pytest.mark.parametrize(("type_name", "cls"), PLUGINS, ids=IDS)
async def test_lifecycle(type_name: str, cls: type[Component], tmp_path: Path, request: pytest.FixtureRequest) -> None:
    body = readme_examples(cls)[0]
    if issubclass(cls, Output) and type_name in AWS_PEERS:
        body = against_moto(type_name, body, request.getfixturevalue("moto"))
    elif issubclass(cls, Output) and type_name in LOCAL_PEERS:
        body, stop_peer = LOCAL_PEERS[type_name](body)
        request.addfinalizer(stop_peer)
    elif issubclass(cls, Output) and type_name in OTHER_PEERS:
        body = OTHER_PEERS[type_name](request, body)
    config = cls.Config.model_validate(body)
    # Stop without start must be safe.
    await cls(config, component_context(type_name, tmp_path)).stop()

    if issubclass(cls, Input):
        emitted: list[Batch] = []

        async def emit(batch: Batch) -> None:
            emitted.append(batch)

        ctx = input_context(type_name, tmp_path, emit)
        instance = cls(config, ctx)
        await instance.start()
        ctx.stopping.set()
        await asyncio.wait_for(instance.run(ctx), timeout=5)  # returns promptly once asked to stop
        await instance.stop()
        kinds = cls.emitted_kinds(config)
        assert all(b.kind in kinds for b in emitted)
        return

    instance = cls(config, component_context(type_name, tmp_path))
    await instance.start()
    for kind in sorted(cls.accepted_kinds(config)):
        batch = Batch(kind, SAMPLE[kind](), nbytes=10)
        if isinstance(instance, Processor):
            out = instance.process(batch)
            assert out is None or isinstance(out, Batch)
        else:
            assert isinstance(instance, Output)
            await instance.write(batch)
    await instance.stop()
