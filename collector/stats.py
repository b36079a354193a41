"""Per-component counters and their Prometheus exposition.

Counters are plain integer attributes bumped once per batch on the hot path;
prometheus_client reads them only when `/metrics` is scraped, through a custom
collector registered on an injected registry (no module-level globals).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from collector import __version__
from collector.buffer.base import BufferCondition
from collector.events import Batch

RESTART_HISTORY = 64  # restart times kept per component, for the restart-loop check


class ComponentStats:
    """Counters of one component; they survive reloads and restarts of that component."""

    __slots__ = (
        "buffer",
        "buffer_condition",
        "buffer_type",
        "checkpoint_failures",
        "dropped",
        "errors",
        "extra",
        "isolated_events",
        "last_error",
        "name",
        "queue_depth",
        "received_bytes",
        "received_events",
        "restart_times",
        "restarts",
        "retries",
        "section",
        "sent_bytes",
        "sent_events",
        "state",
        "type_name",
    )

    def __init__(self, name: str, section: str, type_name: str) -> None:
        self.name = name
        self.section = section
        self.type_name = type_name
        self.received_events = 0
        self.received_bytes = 0
        self.sent_events = 0
        self.sent_bytes = 0
        self.errors = 0
        # Processors: records a processor raised on alone, passed on tagged (collector/isolation.py).
        self.isolated_events = 0
        self.restarts = 0
        self.restart_times: deque[float] = deque(maxlen=RESTART_HISTORY)  # time.monotonic() of each restart
        self.retries = 0
        self.checkpoint_failures = 0
        self.dropped: defaultdict[str, int] = defaultdict(int)
        self.queue_depth: Callable[[], int] = lambda: 0
        self.state = "starting"
        self.last_error: str | None = None
        # Plugin-specific gauges/counters read at scrape time (e.g. a filter's filtered count).
        self.extra: Callable[[], dict[str, float]] = dict
        # Outputs only: the buffer's figures (events, bytes, max_bytes, oldest_age_seconds, ...).
        self.buffer: Callable[[], dict[str, float]] | None = None
        self.buffer_type = ""
        # Outputs only: whether the buffer accepts data now (see `Buffer.condition`).
        self.buffer_condition: Callable[[], BufferCondition] | None = None

    def received(self, batch: Batch) -> None:
        self.received_events += len(batch.records)
        self.received_bytes += batch.nbytes

    def sent(self, batch: Batch) -> None:
        self.sent_events += len(batch.records)
        self.sent_bytes += batch.nbytes

    def drop(self, reason: str, events: int) -> None:
        self.dropped[reason] += events

    def restarted(self) -> None:
        self.restarts += 1
        self.restart_times.append(time.monotonic())

    def restarts_within(self, seconds: float, now: float | None = None) -> int:
        since = (time.monotonic() if now is None else now) - seconds
        return sum(1 for t in self.restart_times if t >= since)

    def checkpoint_failed(self, exc: OSError) -> None:
        self.checkpoint_failures += 1

    def condition(self) -> BufferCondition | None:
        return self.buffer_condition() if self.buffer_condition is not None else None

    def _buffer_snapshot(self) -> dict[str, Any] | None:
        if self.buffer is None:
            return None
        snap: dict[str, Any] = {"type": self.buffer_type, **self.buffer()}
        cond = self.condition()
        if cond is not None:
            snap.update(
                accepting=cond.accepting,
                condition=cond.reason or "ok",
                blocked_seconds=round(cond.blocked_seconds(), 3),
                error=cond.error,
            )
        return snap

    def snapshot(self) -> dict[str, Any]:
        return {
            "received_events": self.received_events,
            "received_bytes": self.received_bytes,
            "sent_events": self.sent_events,
            "sent_bytes": self.sent_bytes,
            "errors": self.errors,
            "isolated_events": self.isolated_events,
            "restarts": self.restarts,
            "retries": self.retries,
            "checkpoint_failures": self.checkpoint_failures,
            "dropped_events": dict(self.dropped),
            "queue_events": self.queue_depth(),
            "extra": self.extra(),
            "buffer": self._buffer_snapshot(),
        }


class RuntimeCollector(Collector):
    """Exposes every component's counters, plus process-level facts, at scrape time."""

    def __init__(
        self,
        stats: Callable[[], list[ComponentStats]],
        reloads: Callable[[], dict[str, int]],
        probes: Callable[[], dict[str, bool]] | None = None,
    ) -> None:
        self._stats = stats
        self._reloads = reloads
        self._probes = probes  # {"healthz": ok, "readyz": ok}
        self._started = time.time()

    def collect(self) -> Iterator[Any]:
        labels = ["component", "component_type", "section"]
        families = {
            "received_events": CounterMetricFamily(
                "collector_component_received_events", "Events received by the component.", labels=labels
            ),
            "received_bytes": CounterMetricFamily(
                "collector_component_received_bytes", "Payload bytes received by the component.", labels=labels
            ),
            "sent_events": CounterMetricFamily(
                "collector_component_sent_events", "Events the component passed on or delivered.", labels=labels
            ),
            "sent_bytes": CounterMetricFamily(
                "collector_component_sent_bytes", "Payload bytes the component passed on or delivered.", labels=labels
            ),
            "errors": CounterMetricFamily(
                "collector_component_errors", "Unexpected exceptions raised by the component.", labels=labels
            ),
            "isolated_events": CounterMetricFamily(
                "collector_component_isolated_events",
                "Records a processor raised on alone, passed on with `processing_error` set.",
                labels=labels,
            ),
            "restarts": CounterMetricFamily(
                "collector_component_restarts", "Times the supervisor restarted the component.", labels=labels
            ),
            "retries": CounterMetricFamily(
                "collector_component_retries", "Requests an output had to retry.", labels=labels
            ),
            "checkpoint_failures": CounterMetricFamily(
                "collector_component_checkpoint_failures",
                "Writes of the component's checkpoint (its source position) that failed.",
                labels=labels,
            ),
        }
        dropped = CounterMetricFamily(
            "collector_component_dropped_events", "Events lost, by reason.", labels=[*labels, "reason"]
        )
        queue = GaugeMetricFamily(
            "collector_component_queue_events", "Events waiting in the component's input channel.", labels=labels
        )
        up = GaugeMetricFamily("collector_component_up", "1 while the component runs, else 0.", labels=labels)
        extra = GaugeMetricFamily(
            "collector_component_value", "Plugin-specific figures, by name.", labels=[*labels, "name"]
        )
        for st in self._stats():
            values = [st.name, st.type_name, st.section]
            snap = st.snapshot()
            for key, family in families.items():
                family.add_metric(values, snap[key])
            for reason, count in snap["dropped_events"].items():
                dropped.add_metric([*values, reason], count)
            queue.add_metric(values, snap["queue_events"])
            up.add_metric(values, 1.0 if st.state == "running" else 0.0)
            for key, value in snap["extra"].items():
                extra.add_metric([*values, key], value)
        buffer_labels = ["component", "buffer_type"]
        buffers = {
            key: GaugeMetricFamily(f"collector_buffer_{key}", help_text, labels=buffer_labels)
            for key, help_text in (
                ("events", "Events in the output's buffer, not yet acknowledged (consumer lag)."),
                ("bytes", "Bytes the output's buffer holds (on disk for disk buffers)."),
                ("max_bytes", "The buffer's size bound."),
                ("oldest_age_seconds", "Age of the oldest unacknowledged data in the buffer."),
            )
        }
        accepting = GaugeMetricFamily(
            "collector_buffer_accepting",
            "1 while the output's buffer takes data; 0 while it is full or its disk refuses writes.",
            labels=[*buffer_labels, "condition"],
        )
        blocked = GaugeMetricFamily(
            "collector_buffer_blocked_seconds",
            "How long the output's buffer has not been taking data (0 while it does).",
            labels=buffer_labels,
        )
        disk_errors = CounterMetricFamily(
            "collector_buffer_disk_errors",
            "Disk operations of a disk buffer that failed, by operation (write, fsync, ledger).",
            labels=[*buffer_labels, "operation"],
        )
        for st in self._stats():
            if st.buffer is None:
                continue
            figures = st.buffer()
            for key, gauge in buffers.items():
                if key in figures:
                    gauge.add_metric([st.name, st.buffer_type], figures[key])
            for operation in ("write", "fsync", "ledger"):
                if f"{operation}_errors" in figures:
                    disk_errors.add_metric([st.name, st.buffer_type, operation], figures[f"{operation}_errors"])
            cond = st.condition()
            if cond is not None:
                accepting.add_metric([st.name, st.buffer_type, cond.reason or "ok"], 1.0 if cond.accepting else 0.0)
                blocked.add_metric([st.name, st.buffer_type], cond.blocked_seconds())
        yield from buffers.values()
        yield accepting
        yield blocked
        yield disk_errors
        yield from families.values()
        yield dropped
        yield queue
        yield up
        yield extra

        reloads = CounterMetricFamily("collector_config_reloads", "Config reloads, by result.", labels=["result"])
        for result, count in self._reloads().items():
            reloads.add_metric([result], count)
        yield reloads
        if self._probes is not None:
            probes = GaugeMetricFamily(
                "collector_probe_ok",
                "1 while /healthz (liveness) or /readyz (readiness) answers 200.",
                labels=["probe"],
            )
            for probe, ok in self._probes().items():
                probes.add_metric([probe], 1.0 if ok else 0.0)
            yield probes
        yield GaugeMetricFamily("collector_start_time_seconds", "When the collector started.", value=self._started)
        info = InfoMetricFamily("collector_build", "Version of the collector.")
        info.add_metric([], {"version": __version__})
        yield info


def make_registry(collector: RuntimeCollector) -> CollectorRegistry:
    from prometheus_client import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    return registry
