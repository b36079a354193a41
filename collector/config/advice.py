"""Warnings about a valid config: graphs that run but do something the user almost surely did not mean.

A warning never stops the collector; `collector validate` prints it (with file:line and a hint like any
config message) and `collector run` logs it at start. The one check so far:

- **Metrics published twice.** CloudWatch Logs turns every EMF document it receives into metrics, so a source
  whose data reaches a `cloudwatch_logs` output as EMF (the `emf` input's documents, or anything through a
  `metrics_to_emf` processor) *and* a `cloudwatch_metrics` output is published twice on real AWS: every Sum
  and SampleCount doubles. Type names are matched as strings: the core imports no plugin.
"""

from __future__ import annotations

from collections.abc import Callable

from collector.config.errors import ConfigIssue
from collector.graph import Graph

EMF_SOURCES = frozenset({"emf"})
"""Input types whose log records are EMF documents."""
EMF_MAKERS = frozenset({"metrics_to_emf"})
"""Processor types that turn metrics into EMF documents."""
EMF_PUBLISHER = "cloudwatch_logs"
METRICS_PUBLISHER = "cloudwatch_metrics"

Locate = Callable[[tuple[str | int, ...], str, str | None], ConfigIssue]


def config_warnings(graph: Graph, locate: Locate) -> list[ConfigIssue]:
    """Every warning about `graph`; `locate(path, message, hint)` places one in the file."""
    return _published_twice(graph, locate)


def _published_twice(graph: Graph, locate: Locate) -> list[ConfigIssue]:
    downstream: dict[str, list[str]] = {name: [] for name in graph.components}
    for spec in graph.components.values():
        for up in spec.upstreams:
            if up in downstream:
                downstream[up].append(spec.name)
    out = []
    for name, spec in graph.components.items():
        if spec.section != "inputs":
            continue
        as_emf: set[str] = set()
        as_metrics: set[str] = set()
        # (component, whether what flows there is EMF); a set of visited states keeps it linear.
        stack = [(name, spec.type_name in EMF_SOURCES)]
        seen: set[tuple[str, bool]] = set()
        while stack:
            state = stack.pop()
            if state in seen:
                continue
            seen.add(state)
            current, emf = state
            for nxt in downstream[current]:
                nspec = graph.components[nxt]
                if nspec.type_name == EMF_PUBLISHER and emf:
                    as_emf.add(nxt)
                elif nspec.type_name == METRICS_PUBLISHER:
                    as_metrics.add(nxt)
                if nspec.section == "processors":
                    stack.append((nxt, emf or nspec.type_name in EMF_MAKERS))
        if as_emf and as_metrics:
            logs, metrics = ", ".join(f"`{n}`" for n in sorted(as_emf)), ", ".join(f"`{n}`" for n in sorted(as_metrics))
            out.append(
                locate(
                    ("inputs", name),
                    f"the metrics of `{name}` reach CloudWatch twice: as EMF documents through {logs} "
                    f"({EMF_PUBLISHER}, which CloudWatch turns into metrics) and through {metrics} "
                    f"({METRICS_PUBLISHER}); every Sum and SampleCount would double",
                    f"route `{name}`'s metrics to one of the two: EMF documents to {EMF_PUBLISHER} only, "
                    f"or metric records to {METRICS_PUBLISHER} only",
                )
            )
    return out
