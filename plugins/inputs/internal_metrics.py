"""`internal_metrics` input: the collector's own counters as metric records.

Every `interval` it emits, per component, the events and bytes received and
sent, errors, restarts and drops *since the previous emission* (counters, so
CloudWatch's Sum statistic is the rate per period) and the current queue depth
(a gauge). Tags: `component`, `component_type`, `section` (and `reason` on
drops). Its own emissions are not counted in what it reports next, by design:
it reports the state before emitting.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import Field

from collector.api import ComponentContext, Input, InputConfig, InputContext
from collector.events import METRICS, Metric
from collector.units import Duration
from collector_plugins.common.metrics.batch import metric_batch

_COUNTERS = (
    "received_events",
    "received_bytes",
    "sent_events",
    "sent_bytes",
    "errors",
    "restarts",
)


class InternalMetricsConfig(InputConfig):
    type: Literal["internal_metrics"] = Field(description="Plugin type.", examples=["internal_metrics"])
    interval: Duration = Field(10.0, ge=0.1, description="How often to emit, e.g. 10s or 1m.", examples=["10s"])
    prefix: str = Field("collector_", description="Prepended to every metric name.", examples=["collector_"])


class InternalMetrics(Input):
    type_name = "internal_metrics"
    description = "The collector's own per-component counters, as metrics."
    Config = InternalMetricsConfig
    emits: ClassVar[frozenset[str]] = frozenset({METRICS})

    def __init__(self, config: InternalMetricsConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._previous: dict[tuple[str, str], float] = {}

    async def run(self, ctx: InputContext) -> None:
        while not await ctx.sleep(self.config.interval):
            metrics = self.collect(ctx.runtime_stats(), time.time())
            if metrics:
                await ctx.emit(metric_batch(metrics))

    def collect(self, stats: list[Any], now: float) -> list[Metric]:
        prefix = self.config.prefix
        out: list[Metric] = []
        for st in stats:
            tags = {"component": st.name, "component_type": st.type_name, "section": st.section}
            snap = st.snapshot()
            for key in _COUNTERS:
                out.append(Metric(prefix + key, "counter", self._delta(st.name, key, snap[key]), dict(tags), now))
            for reason, count in snap["dropped_events"].items():
                value = self._delta(st.name, "dropped:" + reason, count)
                out.append(Metric(prefix + "dropped_events", "counter", value, {**tags, "reason": reason}, now))
            out.append(Metric(prefix + "queue_events", "gauge", float(snap["queue_events"]), dict(tags), now))
        return out

    def _delta(self, component: str, key: str, value: float) -> float:
        previous = self._previous.get((component, key), 0.0)
        self._previous[(component, key)] = value
        # A counter that went backwards was reset (component replaced): report its new total.
        return float(value - previous if value >= previous else value)
