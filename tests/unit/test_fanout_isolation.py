"""Property: in any topology, every output sees exactly what its own path produces, whatever its siblings do.

Hypothesis draws trees of components under one input: fan-outs to every built-in processor (enumerated
from the registry, so a new processor is included, and must be given configs here, automatically) and to
outputs with memory or disk buffers, some of which modify the records they are sent. The topology runs
on the real config loader, graph and runtime. The expected records of each output are computed apart
from all of that: each input batch, deep-copied, through fresh instances of the processors on the path
from the input to that output.

To give a branch every chance to observe another's changes, outputs hold their first send until every
processor has handled every batch: by then the records sit in the buffers (a memory buffer's queue, a
disk buffer's in-memory tail), where a shared record changed by a sibling would be sent changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import Field

from collector.api import ALL_KINDS, HostFacts, Input, InputConfig, InputContext, Output, OutputConfig, Processor
from collector.config import parse_config
from collector.events import LOGS, METRICS, Batch, Metric
from collector.graph import Graph
from collector.registry import Registry, load_registry
from collector.runtime import Runtime
from collector.testing import component_context, wait_for

HOST = "h"
NOW = float(int(time.time()))  # metrics_to_emf checks timestamps against the clock: keep them recent
EXAMPLES = 150  # about 12 s on one core; each example is a whole runtime over a random topology

# -- configs that make each built-in processor change records -----------------------------------------------
# Several per type where the choice matters (in place or under a target, dropping the source field...).

CONFIGS: dict[str, list[dict[str, Any]]] = {
    "add_fields": [
        {"fields": {"env": "prod", "node": "{host}"}},
        {"fields": {"level": "forced", "extra": 1}, "overwrite": False},
    ],
    "filter": [
        {"action": "drop", "conditions": [{"field": "level", "equals": "debug"}]},
        {"match": "any", "conditions": [{"field": "k8s.ns", "equals": "a"}, {"field": "tags.env", "exists": True}]},
    ],
    "parse_json": [
        {"field": "message"},
        {"field": "message", "target": "parsed", "drop_field": True, "on_error": "drop"},
    ],
    "parse_logfmt": [{"field": "message"}, {"field": "message", "target": "kv", "error_field": None}],
    "parse_regex": [
        {"field": "message", "pattern": r"^(?P<first>\S+)"},
        {"field": "message", "pattern": r"level=(?P<level>\w+)", "overwrite": True, "drop_field": True},
    ],
    "parse_timestamp": [
        {"field": "time", "formats": ["rfc3339"]},
        {"field": "time", "formats": ["rfc3339", "unix"], "target": "when", "drop_field": True},
    ],
    "trace_context": [{}, {"overwrite": True, "sampled_field": "sampled", "span_id_field": None}],
    "metrics_to_emf": [{"namespace": "Fanout"}, {"namespace": "Fanout", "distribution": "statistic_set"}],
}

MESSAGES = (
    '{"level": "error", "user": {"id": 7, "roles": ["a"]}, "msg": "hi"}',
    '{"timestamp": "2024-05-01T12:00:00Z", "n": [1, 2]}',
    "[1, 2]",
    'level=info user=bob msg="hello there"',
    "GET / 200 X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "plain text without structure",
)


# -- the test plugins: an input replaying batches, outputs keeping snapshots --------------------------------


class ScriptConfig(InputConfig):
    type: Literal["script"] = Field(description="Plugin type.", examples=["script"])


class Script(Input):
    """Emits a deep copy of each batch in `Script.batches`, then finishes."""

    type_name = "script"
    description = "Replays batches."
    Config = ScriptConfig
    emits: ClassVar[frozenset[str]] = frozenset({LOGS, METRICS})
    batches: ClassVar[list[Batch]] = []

    async def run(self, ctx: InputContext) -> None:
        for batch in self.batches:
            await ctx.emit(Batch(batch.kind, copy.deepcopy(batch.records), nbytes=len(batch.records)))


class SnapshotConfig(OutputConfig):
    type: Literal["snapshot"] = Field(description="Plugin type.", examples=["snapshot"])


class Snapshot(Output):
    """Keeps a deep snapshot of each record it is sent (once `gate` opens) in `seen[name]`."""

    type_name = "snapshot"
    description = "Keeps snapshots."
    Config = SnapshotConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS
    seen: ClassVar[dict[str, list[Any]]] = {}
    gate: ClassVar[asyncio.Event | None] = None

    async def write(self, batch: Batch) -> None:
        assert Snapshot.gate is not None
        await Snapshot.gate.wait()
        Snapshot.seen.setdefault(self.ctx.name, []).extend(canonical(r) for r in batch.records)


class ScribbleConfig(OutputConfig):
    type: Literal["scribble"] = Field(description="Plugin type.", examples=["scribble"])


class Scribble(Snapshot):
    """A snapshot output that then changes every record it was sent (as it declares)."""

    type_name = "scribble"
    Config = ScribbleConfig
    mutates_records = True

    async def write(self, batch: Batch) -> None:
        await super().write(batch)
        for r in batch.records:
            if isinstance(r, Metric):
                r.name += "!"
                r.tags = {**r.tags, "scribbled": self.ctx.name}
            else:
                r["scribbled"] = self.ctx.name
                r.pop("message", None)


def canonical(value: Any) -> Any:
    """An immutable, comparable snapshot of a record (taken at once, so later changes do not reach it)."""
    if isinstance(value, Metric):
        return ("Metric", canonical(value.to_dict()))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, canonical(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("list", tuple(canonical(v) for v in value))
    return (type(value).__name__, value)


def as_multiset(records: list[Any]) -> list[Any]:
    return sorted(records, key=repr)


def make_registry() -> Registry:
    registry = load_registry()
    for cls in (Script, Snapshot, Scribble):
        registry.add(cls)
    return registry


REGISTRY = make_registry()
PROCESSORS: dict[str, type[Processor]] = {
    name: cls  # type: ignore[misc]
    for name, cls in REGISTRY.in_section("processors").items()
    if cls.__module__.startswith("collector_plugins.")
}


def test_every_built_in_processor_has_configs_here() -> None:
    # A new processor fails here until it is given configs: the property below then covers it.
    assert sorted(CONFIGS) == sorted(PROCESSORS)


# -- what each output should see, computed apart from the runtime -------------------------------------------


def delivered_to(graph: Graph, name: str, batches: list[Batch], data_dir: Path) -> list[Batch]:
    """The batches component `name` receives: fresh copies of the input's through fresh processors on its path."""
    components = graph.components
    path: list[str] = []
    at = name
    while components[at].section != "inputs":
        (at,) = components[at].upstreams  # a tree: one upstream each
        path.insert(0, at)
    processors = [components[n].plugin(components[n].config, component_context(n, data_dir, HOST)) for n in path[1:]]
    out: list[Batch] = []
    for template in batches:
        batch: Batch | None = Batch(template.kind, copy.deepcopy(template.records), len(template.records))
        for hop, processor in zip(path[1:], processors, strict=True):
            if batch is None or batch.kind not in components[hop].accepts:
                batch = None
                break
            assert isinstance(processor, Processor)
            batch = processor.process(batch)
            if batch is not None and not batch.records:
                batch = None  # the runtime passes on no empty batch
        if batch is not None and batch.kind in components[name].accepts:
            out.append(batch)
    return out


# -- topologies -----------------------------------------------------------------------------------------------


def _kinds(type_name: str, config: dict[str, Any], incoming: frozenset[str]) -> tuple[frozenset[str], frozenset[str]]:
    """What a processor of `type_name` accepts and passes on, fed `incoming`."""
    cls = PROCESSORS[type_name]
    model = cls.Config.model_validate({"type": type_name, "inputs": ["src"], **config})
    accepts = cls.accepted_kinds(model)
    return accepts, cls.emitted_kinds(model) or (incoming & accepts)


def draw_topology(draw: Callable[..., Any]) -> dict[str, Any]:
    """A config: input `src` and a tree below it of processors (at most three deep) and outputs."""
    processors: dict[str, Any] = {}
    outputs: dict[str, Any] = {}

    def children(parent: str, kinds: frozenset[str], depth: int) -> None:
        for _ in range(draw(st.integers(1, 3))):
            fitting = [t for t in sorted(PROCESSORS) if _kinds(t, CONFIGS[t][0], kinds)[0] & kinds] if depth < 3 else []
            if fitting and len(processors) < 8 and draw(st.booleans()):
                type_name = draw(st.sampled_from(fitting))
                config = draw(st.sampled_from(CONFIGS[type_name]))
                name = f"p{len(processors)}_{type_name}"
                processors[name] = {"type": type_name, "inputs": [parent], **config}
                children(name, _kinds(type_name, config, kinds)[1], depth + 1)
            else:
                name = f"o{len(outputs)}"
                buffer = {"type": "disk", "fsync": "never"} if draw(st.booleans()) else {"type": "memory"}
                kind = draw(st.sampled_from(["snapshot", "snapshot", "scribble"]))
                outputs[name] = {"type": kind, "inputs": [parent], "buffer": buffer}

    children("src", frozenset({LOGS, METRICS}), 0)
    return {"inputs": {"src": {"type": "script"}}, "processors": processors, "outputs": outputs}


def log_records() -> st.SearchStrategy[dict[str, Any]]:
    message = st.sampled_from(MESSAGES).flatmap(lambda m: st.sampled_from([m, m.encode()]))
    optional = st.fixed_dictionaries(
        {},
        optional={
            "level": st.sampled_from(["debug", "info", "error"]),
            "time": st.sampled_from(["2024-05-01T12:00:00Z", "1714564800", "yesterday"]),
            "k8s": st.sampled_from([{"ns": "a", "labels": {"app": "x"}}, {"ns": "b", "labels": {}}]),
            "items": st.lists(st.integers(0, 9), max_size=3),
            "trace_id": st.just("4bf92f3577b34da6a3ce929d0e0e4736"),
        },
    )
    return st.builds(lambda m, rest: {"timestamp": NOW, "message": m, **rest}, message, optional)


def metric_records() -> st.SearchStrategy[Metric]:
    def metric(name: str, kind: str, env: str | None, unit: str | None) -> Metric:
        value: Any = {"counter": 3.0, "gauge": 1.5, "distribution": [0.1, 0.2, 0.2], "set": ["a", "b"]}[kind]
        tags = {"host": HOST} if env is None else {"host": HOST, "env": env}
        return Metric(name, kind, value, tags, NOW, unit)  # type: ignore[arg-type]

    return st.builds(
        metric,
        st.sampled_from(["requests", "latency", "users"]),
        st.sampled_from(["counter", "gauge", "distribution", "set"]),
        st.sampled_from([None, "prod"]),
        st.sampled_from([None, "Seconds"]),
    )


BATCHES = st.lists(
    st.one_of(
        st.lists(log_records(), min_size=1, max_size=4).map(lambda r: Batch(LOGS, r)),
        st.lists(metric_records(), min_size=1, max_size=4).map(lambda r: Batch(METRICS, r)),
    ),
    min_size=1,
    max_size=3,
)


# -- running one topology -----------------------------------------------------------------------------------


async def run_topology(config: dict[str, Any], batches: list[Batch], data_dir: Path) -> None:
    """Run `config` on the real runtime and check every output against its own path."""
    graph = parse_config(json.dumps(config), "c.yaml", REGISTRY, environ={}).graph
    Script.batches = batches
    Snapshot.seen = {}
    Snapshot.gate = asyncio.Event()
    expected = {
        name: [canonical(r) for b in delivered_to(graph, name, batches, data_dir) for r in b.records]
        for name, spec in graph.components.items()
        if spec.section == "outputs"
    }
    receives = {
        name: sum(len(b.records) for b in delivered_to(graph, name, batches, data_dir))
        for name, spec in graph.components.items()
        if spec.section != "inputs"
    }
    runtime = Runtime(data_dir / "run", HostFacts(HOST))
    await runtime.apply(graph)
    try:
        # Hold every send until all components have received everything: shared records now sit in buffers.
        # A leak can change what a component receives (a filter seeing a sibling's field), so a wait that
        # times out goes on to the comparison, which says what differs.
        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: all(runtime.stats[n].received_events == want for n, want in receives.items()))
        Snapshot.gate.set()
        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: all(len(Snapshot.seen.get(n, [])) == len(want) for n, want in expected.items()))
    finally:
        Snapshot.gate.set()
        assert await runtime.shutdown(5)
    for name, want in expected.items():
        assert as_multiset(Snapshot.seen.get(name, [])) == as_multiset(want), f"output {name} of {config}"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), batches=BATCHES)
def test_every_output_sees_exactly_what_its_own_path_produces(data: st.DataObject, batches: list[Batch]) -> None:
    config = draw_topology(data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_topology(config, batches, Path(tmp)))


# -- every processor, deterministically, in the shape of the issue -------------------------------------------


SAMPLE = [
    Batch(LOGS, [{"timestamp": NOW, "message": m, "level": "debug", "time": "2024-05-01T12:00:00Z"} for m in MESSAGES]),
    Batch(LOGS, [{"timestamp": NOW, "message": m.encode(), "k8s": {"ns": "a", "labels": {}}} for m in MESSAGES]),
    Batch(METRICS, [Metric("latency", "distribution", [0.1, 0.2], {"host": HOST, "env": "prod"}, NOW, "Seconds")]),
    Batch(METRICS, [Metric("requests", "counter", 2.0, {"host": HOST}, NOW)]),
]


@pytest.mark.parametrize("config", [(t, i) for t in sorted(CONFIGS) for i in range(len(CONFIGS[t]))], ids=str)
def test_each_processor_config_changes_records(config: tuple[str, int], tmp_path: Path) -> None:
    """Each config above really changes what passes (else the property could not catch a leak through it)."""
    type_name, index = config
    cls = PROCESSORS[type_name]
    model = cls.Config.model_validate({"type": type_name, "inputs": ["src"], **CONFIGS[type_name][index]})
    processor = cls(model, component_context("p", tmp_path, HOST))
    changed = False
    for template in SAMPLE:
        if template.kind not in cls.accepted_kinds(model):
            continue
        before = [canonical(r) for r in template.records]
        out = processor.process(Batch(template.kind, copy.deepcopy(template.records)))
        changed |= out is None or [canonical(r) for r in out.records] != before
    assert changed


@pytest.mark.parametrize("type_name", sorted(CONFIGS))
def test_each_processor_beside_memory_and_disk_outputs(type_name: str, tmp_path: Path) -> None:
    """src -> {processor -> out, raw (memory), raw (disk), scribble}, for every config of every processor."""
    for index, settings_ in enumerate(CONFIGS[type_name]):
        config = {
            "inputs": {"src": {"type": "script"}},
            "processors": {"p": {"type": type_name, "inputs": ["src"], **settings_}},
            "outputs": {
                "parsed": {"type": "snapshot", "inputs": ["p"]},
                "raw_memory": {"type": "snapshot", "inputs": ["src"]},
                "raw_disk": {"type": "snapshot", "inputs": ["src"], "buffer": {"type": "disk", "fsync": "never"}},
                "scribbler": {"type": "scribble", "inputs": ["src"]},
            },
        }
        asyncio.run(run_topology(config, SAMPLE, tmp_path / str(index)))
