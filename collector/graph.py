"""The topology: which component feeds which, and the checks that make it runnable.

Invariants a validated `Graph` guarantees (the runtime relies on them):
- every upstream name resolves to an input or a processor (globs expanded);
- the processors form no cycle, so `order()` is a topological order;
- every input and processor has at least one consumer;
- on every edge, what the producer may emit overlaps what the consumer accepts
  (where they only partly overlap, the router passes a consumer only the kinds
  it accepts).

A processor passes on the kinds it receives that it also accepts, unless its
plugin declares a fixed `emits` set (a processor turning logs into metrics).

Fan-out isolation (`Graph.copy_plan`, applied by `runtime.Router`): no
consumer may observe another branch's changes to a record, and nothing is
copied where no branch changes records. A producer's batch of kind k goes to
every consumer that accepts k. When two or more consumers get it, each one
whose branch *may modify* records of kind k gets its own copy (`Batch.copy`);
the others share the producer's batch, which therefore is only ever read.
With one consumer, that consumer gets the batch itself. A branch may modify
the records it is given when its consumer
- is a processor or an output that declares `mutates_records`; or
- is a processor that declares `forwards_records` (it may return records it
  received) and has exactly one consumer of kind k, whose branch may modify
  them. With two or more, that processor's own router copies for each of
  them that may, so nothing downstream reaches back to its input; with none,
  nothing does either.
Buffers change nothing here: a memory buffer keeps the batch it is given and
a disk buffer hands out its in-memory tail (the records it was given) when the
reader has caught up, so an output always sees the record objects routed to it.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from collector.api import Component, Output, Processor
from collector.config.errors import ConfigIssue, did_you_mean
from collector.events import KINDS


@dataclass(frozen=True)
class ComponentSpec:
    """One validated component: its name, section, plugin class and config."""

    name: str
    section: str  # "inputs", "processors" or "outputs"
    plugin: type[Component]
    config: Any
    upstreams: tuple[str, ...] = ()
    accepts: frozenset[str] = frozenset()
    emits: frozenset[str] = frozenset()

    @property
    def type_name(self) -> str:
        return self.plugin.type_name

    def identity(self) -> tuple[Any, ...]:
        """What must be equal for a reload to keep this component running untouched."""
        return (self.section, self.plugin, self.config.model_dump(mode="json"))


@dataclass(frozen=True)
class Graph:
    components: dict[str, ComponentSpec]

    def consumers(self, name: str) -> list[ComponentSpec]:
        return [spec for spec in self.components.values() if name in spec.upstreams]

    def order(self) -> list[str]:
        """Names from sources to sinks: every component comes after its upstreams."""
        done: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for upstream in self.components[name].upstreams:
                visit(upstream)
            done.append(name)

        for name in self.components:
            visit(name)
        return done

    def copy_plan(self) -> dict[tuple[str, str], frozenset[str]]:
        """(producer, consumer) -> the kinds of batches that consumer gets its own copy of (see the module note).

        Edges without copies are left out. Assumes a validated graph (no cycles).
        """
        consumers = {name: self.consumers(name) for name in self.components}
        memo: dict[tuple[str, str], bool] = {}

        def may_modify(spec: ComponentSpec, kind: str) -> bool:
            key = (spec.name, kind)
            if key not in memo:
                plugin = spec.plugin
                if issubclass(plugin, Processor | Output) and plugin.mutates_records:
                    memo[key] = True
                elif issubclass(plugin, Processor) and plugin.forwards_records:
                    fed = [c for c in consumers[spec.name] if kind in c.accepts]
                    memo[key] = len(fed) == 1 and may_modify(fed[0], kind)
                else:
                    memo[key] = False
            return memo[key]

        plan: dict[tuple[str, str], frozenset[str]] = {}
        for name, spec in self.components.items():
            if spec.section == "outputs":
                continue
            for kind in KINDS:  # every kind, not just the declared `emits`: a copy too many costs nothing here
                fed = [c for c in consumers[name] if kind in c.accepts]
                if len(fed) < 2:
                    continue
                for consumer in fed:
                    if may_modify(consumer, kind):
                        edge = (name, consumer.name)
                        plan[edge] = plan.get(edge, frozenset()) | {kind}
        return plan


def resolve_references(
    names_by_section: Mapping[str, Iterable[str]],
    refs: Mapping[str, list[Any]],
    where: Callable[[tuple[str | int, ...]], ConfigIssue],
    sections: Mapping[str, str],
) -> tuple[dict[str, tuple[str, ...]], list[ConfigIssue], set[str], dict[str, set[str]]]:
    """Expand `inputs:` lists (names or globs) into producer names.

    `refs` maps a consumer name to its raw `inputs` list; `where(path)` makes an
    issue located at a config path (its message is then replaced). Also returns
    the names suggested for misspelt references (their missing consumer is
    that typo, not a second problem worth reporting) and, per consumer, the
    producers it matched only through a glob (kind-incompatible ones among
    those are skipped rather than reported: `inputs: ["*"]` means "all that fit").
    """
    producers = [n for section in ("inputs", "processors") for n in names_by_section.get(section, ())]
    outputs = set(names_by_section.get("outputs", ()))
    issues: list[ConfigIssue] = []
    resolved: dict[str, tuple[str, ...]] = {}
    suggested: set[str] = set()
    by_glob: dict[str, set[str]] = {}
    for consumer, raw in refs.items():
        chosen: list[str] = []
        explicit: set[str] = set()
        globbed: set[str] = set()
        for i, ref in enumerate(raw):
            path = (sections[consumer], consumer, "inputs", i)
            if not isinstance(ref, str) or not ref:
                continue  # the schema reports the wrong type
            if any(c in ref for c in "*?["):
                matched = [p for p in fnmatch.filter(producers, ref) if p != consumer]
                if not matched:
                    issues.append(_with(where(path), f"pattern `{ref}` matches no input or processor"))
                chosen.extend(m for m in matched if m not in chosen)
                globbed.update(matched)
                continue
            if ref in producers:
                explicit.add(ref)
                if ref not in chosen:
                    chosen.append(ref)
            elif ref in outputs:
                issues.append(_with(where(path), f"`{ref}` is an output; outputs produce nothing to consume", None))
            else:
                close = difflib.get_close_matches(ref, producers, n=1, cutoff=0.6)
                suggested.update(close)
                issues.append(_with(where(path), f"unknown component `{ref}`", did_you_mean(ref, producers)))
        resolved[consumer] = tuple(chosen)
        by_glob[consumer] = globbed - explicit
    return resolved, issues, suggested, by_glob


def find_cycles(upstreams: Mapping[str, tuple[str, ...]]) -> list[list[str]]:
    """Each distinct cycle once, as the list of names around it."""
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the stack, 2 = finished
    stack: list[str] = []
    seen_cycles: set[frozenset[str]] = set()

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for up in upstreams.get(name, ()):
            if state.get(up) == 1:
                cycle = stack[stack.index(up) :]
                key = frozenset(cycle)
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    cycles.append([*cycle, up])
            elif up not in state:
                visit(up)
        stack.pop()
        state[name] = 2

    for name in upstreams:
        if name not in state:
            visit(name)
    return cycles


def effective_kinds(
    specs: Mapping[str, tuple[str, type[Component], Any]],
    upstreams: Mapping[str, tuple[str, ...]],
) -> tuple[dict[str, frozenset[str]], dict[str, frozenset[str]]]:
    """What each component accepts and what it actually emits, given its upstreams.

    `specs` maps name -> (section, plugin class, validated config). Assumes no cycles.
    """
    accepts: dict[str, frozenset[str]] = {}
    emits: dict[str, frozenset[str]] = {}

    def emitted(name: str) -> frozenset[str]:
        if name in emits:
            return emits[name]
        section, plugin, config = specs[name]
        accepts[name] = plugin.accepted_kinds(config)
        declared = plugin.emitted_kinds(config)
        if section == "processors" and issubclass(plugin, Processor) and not declared:
            incoming: frozenset[str] = frozenset()
            for up in upstreams.get(name, ()):
                if up in specs:
                    incoming |= emitted(up)
            declared = incoming & accepts[name]
        emits[name] = declared
        return declared

    for name in specs:
        emitted(name)
    return accepts, emits


def _with(issue: ConfigIssue, message: str, hint: str | None = None) -> ConfigIssue:
    return ConfigIssue(issue.path, message, hint, issue.file, issue.line, issue.column)
