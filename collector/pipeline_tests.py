"""Run pipeline unit tests (`collector test`): records in at one component, checked where they come out.

The config's REAL processors are built from the registry as the runtime builds
them (plugin class + validated config + a component context) and run
synchronously, in topological order, batch by batch; inputs and outputs are
never started. What a processor emits goes to each consumer accepting its kind
(a copy each, so no branch sees another's changes, as `Graph.copy_plan`
guarantees at run time); a processor that raises has the records it raised on
isolated as the runtime does (collector/isolation.py). What reaches a name is
snapshotted as plain values right away, so a later processor changing a record
in place cannot change what an earlier point saw.

Compared values are JSON-like: `bytes` are decoded as UTF-8 (so an expected
`message: "GET /"` matches raw bytes), a metric is its `to_dict()` form.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.api import ComponentContext, HostFacts, Processor
from collector.events import Batch, Metric
from collector.graph import Graph
from collector.isolation import isolate
from collector.pipeline_tests_format import Condition, Expectation, InputRecord, PipelineTest, parse_now

TEST_HOST = "testhost"
_PATH_RE = re.compile(r"[^.\[\]]+|\[\d+\]")
_MISSING = object()


@dataclass
class Result:
    name: str
    file: str
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


@contextmanager
def fixed_clock(now: float | None) -> Iterator[None]:
    """`time.time()` reads `now` and local time is UTC (rules that depend on the date give one answer)."""
    if now is None:
        yield
        return
    real, old_tz = time.time, os.environ.get("TZ")
    time.time = lambda: now  # type: ignore[assignment]
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        time.time = real  # type: ignore[assignment]
        if old_tz is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old_tz
        time.tzset()


def run_tests(graph: Graph, tests: list[tuple[str, PipelineTest]], now: float | None = None) -> list[Result]:
    return asyncio.run(_run_all(graph, tests, now))


async def _run_all(graph: Graph, tests: list[tuple[str, PipelineTest]], now: float | None) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory(prefix="collector-test-") as data_dir:
        for file, test in tests:
            clock = parse_now(test.now) if test.now is not None else now
            with fixed_clock(clock):
                seen = await _run_one(graph, test, Path(data_dir))
            results.append(Result(test.name, file, check(test, seen)))
    return results


def make_record(item: InputRecord) -> Any:
    if item.line is not None:
        return {"message": item.line.encode("utf-8", "surrogateescape"), "timestamp": time.time()}
    if item.metric is not None:
        m = item.metric
        return Metric(
            m["name"], m["type"], m["value"], m.get("tags"), m.get("timestamp", time.time()), m.get("unit"),
            m.get("interval", 0.0),
        )  # fmt: skip
    return dict(item.log if item.log is not None else item.trace or {})


async def _run_one(graph: Graph, test: PipelineTest, data_dir: Path) -> dict[str, list[Any]]:
    """What each component downstream of `insert_at` received (outputs) or passed on (processors), as plain values."""
    processors: dict[str, Processor] = {}
    for name, spec in graph.components.items():
        if spec.section == "processors":
            ctx = ComponentContext(
                name, logging.getLogger(f"collector.component.{name}"), data_dir, HostFacts(TEST_HOST)
            )
            processors[name] = spec.plugin(spec.config, ctx)  # type: ignore[assignment]
    for p in processors.values():
        await p.start()
    try:
        return _flow(graph, test, processors)
    finally:
        for p in processors.values():
            await p.stop()


def _flow(graph: Graph, test: PipelineTest, processors: dict[str, Processor]) -> dict[str, list[Any]]:
    inbox: dict[str, list[Batch]] = {name: [] for name in graph.components}
    seen: dict[str, list[Any]] = {}
    by_kind: dict[str, list[Any]] = {}
    for item in test.inputs:
        by_kind.setdefault(item.kind, []).append(make_record(item))
    batches = [Batch(kind, records) for kind, records in by_kind.items()]  # type: ignore[arg-type]

    def route(producer: str, out: list[Batch]) -> None:
        for batch in out:
            fed = [c for c in graph.consumers(producer) if batch.kind in c.accepts]
            for consumer in fed:
                inbox[consumer.name].append(batch.copy() if len(fed) > 1 else batch)

    route(test.insert_at, batches)
    started = False
    for name in graph.order():
        if name == test.insert_at:
            started = True
            continue
        if not started or not inbox[name]:
            continue
        spec = graph.components[name]
        if spec.section == "outputs":
            seen[name] = [plain(r) for b in inbox[name] for r in b.records]
            continue
        out: list[Batch] = []
        for batch in inbox[name]:
            out.extend(_process(processors[name], batch, name, spec.emits))
        seen[name] = [plain(r) for b in out for r in b.records]
        route(name, out)
    return seen


def _process(processor: Processor, batch: Batch, name: str, emits: frozenset[str]) -> list[Batch]:
    try:
        result = processor.process(batch)
    except Exception as exc:  # as the runtime: isolate the records it raises on, pass the rest on
        return isolate(processor.process, batch, name, emits, exc).batches
    return [result] if result is not None and result.records else []


def plain(value: Any) -> Any:
    """A JSON-like deep copy: bytes decoded (invalid bytes kept as surrogates), metrics as dicts."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, Metric):
        return plain(value.to_dict())
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def lookup(record: Any, path: str) -> Any:
    """The value at `a.b[0]`, or `_MISSING`."""
    current = record
    for part in _PATH_RE.findall(path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(current, list) or index >= len(current):
                return _MISSING
            current = current[index]
        elif isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return _MISSING
    return current


_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, str),  # compared values are decoded; kept for what an input emits
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, float),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
}


def show(value: Any) -> str:
    if value is _MISSING:
        return "(missing)"
    text = json.dumps(value, ensure_ascii=False, default=repr, sort_keys=True)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes (kept as surrogates): escaped, so printing them cannot fail
        return json.dumps(value, default=repr, sort_keys=True)
    return text


def check(test: PipelineTest, seen: dict[str, list[Any]]) -> list[str]:
    """Every way `seen` differs from the test's expectations, one readable line each."""
    problems: list[str] = []
    for name in test.no_outputs_from:
        got = seen.get(name, [])
        if got:
            problems.append(f"{name}: expected no records, got {len(got)}: {show(got[0])}")
    for exp in test.outputs:
        problems.extend(_check_expectation(exp, seen.get(exp.extract_from, [])))
    return problems


def _check_expectation(exp: Expectation, got: list[Any]) -> list[str]:
    where = exp.extract_from
    out: list[str] = []
    if exp.count is not None and len(got) != exp.count:
        out.append(f"{where}: expected {exp.count} record(s), got {len(got)}")
    if exp.records is not None:
        out.extend(diff_records(where, exp.records, got))
    if exp.conditions and not got:
        out.append(f"{where}: no records came out to check the conditions on")
    for i, record in enumerate(got):
        for cond in exp.conditions:
            why = condition_fails(cond, record)
            if why:
                out.append(f"{where}[{i}].{cond.field}: {why}")
    return out


def condition_fails(cond: Condition, record: Any) -> str | None:
    value = lookup(record, cond.field)
    fields = cond.model_fields_set
    if "exists" in fields:
        if cond.exists and value is _MISSING:
            return "expected to exist, missing"
        if not cond.exists and value is not _MISSING:
            return f"expected not to exist, got {show(value)}"
        return None
    if "equals" in fields:
        return (
            None
            if value is not _MISSING and not _diff_value("", cond.equals, value)  # `true` is not 1
            else f"expected {show(cond.equals)}, got {show(value)}"
        )
    if "matches" in fields:
        if not isinstance(value, str) or not re.search(cond.matches or "", value):
            return f"expected to match /{cond.matches}/, got {show(value)}"
        return None
    if value is _MISSING or not _TYPES[str(cond.type)](value):
        return f"expected type {cond.type}, got {show(value)}"
    return None


def diff_records(where: str, expected: list[Any], got: list[Any]) -> list[str]:
    """Field-path differences between the expected and the actual records, record by record."""
    out: list[str] = []
    if len(expected) != len(got):
        out.append(f"{where}: expected {len(expected)} record(s), got {len(got)}")
    for i in range(max(len(expected), len(got))):
        here = f"{where}[{i}]"
        if i >= len(got):
            out.append(f"{here}: missing record, expected {show(expected[i])}")
        elif i >= len(expected):
            out.append(f"{here}: unexpected record {show(got[i])}")
        else:
            out.extend(_diff_value(here, expected[i], got[i]))
    return out


def _diff_value(path: str, want: Any, got: Any) -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for key in sorted(set(want) | set(got), key=str):
            sub = f"{path}.{key}"
            if key not in got:
                out.append(f"{sub}: expected {show(want[key])}, missing")
            elif key not in want:
                out.append(f"{sub}: unexpected field, got {show(got[key])}")
            else:
                out.extend(_diff_value(sub, want[key], got[key]))
        return out
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        return [
            line for i, (w, g) in enumerate(zip(want, got, strict=True)) for line in _diff_value(f"{path}[{i}]", w, g)
        ]
    if (want == got and type(want) is type(got)) or (_number(want) and _number(got) and want == got):
        return []
    return [f"{path}: expected {show(want)}, got {show(got)}"]


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)
