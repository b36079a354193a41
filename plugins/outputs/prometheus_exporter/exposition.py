"""What a Prometheus server scrapes from the `prometheus_exporter` output: metric records folded into series.

Points that came from a Prometheus target (the `prometheus` input sets their `source`) are passed
through: the same family name, type and HELP, the same sample names and label values (a bucket's `le`
as the target wrote it), and the target's own cumulative values, exemplars included, so a series
scraped from a target leaves as the same series with the same value. A point whose name a processor
changed is no longer the target's series and takes the path below; so do points without a `source`
(other inputs, and aggregates: an aggregator's output is no longer what the target said).

Other records arrive as per-interval points; Prometheus wants cumulative counters and
histograms, so the state here accumulates them from the collector's start:

- counter -> `counter` `<name>_total`: the running sum of every interval's increase;
- gauge -> `gauge`: the last value; a set -> `gauge`: its last member count;
- a distribution with histogram buckets (`bounds`, from the `prometheus` input) -> `histogram`:
  cumulative bucket counts, `_sum` and `_count` (the bounds of its first point are kept);
- any other distribution (StatsD timers, EMF values) -> `summary`: cumulative `_sum` and `_count`, and the
  0.5, 0.9 and 0.99 quantiles of the latest interval (Prometheus summaries are precomputed windows too).

Names become Prometheus names (`app.requests` -> `app_requests`; anything outside `[a-zA-Z0-9_:]` -> `_`,
a leading digit prefixed with `_`), tag names likewise; values are kept as they are (escaped by the
exposition). A name seen with two types keeps the first; the others are counted (`type_conflicts`).
Points from OTLP (`source` `format: otlp`, see otlp.py) whose source is cumulative are passed through the
same way: monotonic sums as counters, histograms (exponential ones as classic buckets) and summaries with
the sender's own cumulative values. Delta points are accumulated as above; a non-monotonic delta sum (an
up-down counter's change) becomes a gauge holding the running sum.
Series not updated for `expire_after` disappear, so a finished job or a removed label set does not linger.
Exposition goes through prometheus_client's families, so TYPE and HELP lines and escaping are its own.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.metrics_core import Metric as PromFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar, Sample
from prometheus_client.utils import floatToGoString

from collector.events import Metric
from collector_plugins.common.metrics.distribution import as_distribution, finite_number
from collector_plugins.outputs.prometheus_exporter import otlp

QUANTILES = (0.5, 0.9, 0.99)
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")

Labels = tuple[tuple[str, str], ...]


def metric_name(name: str) -> str:
    out = _INVALID.sub("_", name)
    return "_" + out if not out or out[0].isdigit() else out


def label_name(name: str) -> str:
    out = _INVALID_LABEL.sub("_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    return "_" + out if out.startswith("__") else out  # names starting with __ are reserved for Prometheus


@dataclass
class Series:
    updated: float
    value: float = 0.0
    count: float = 0.0
    sum: float = 0.0
    bounds: list[float] | None = None
    buckets: list[float] | None = None
    """Cumulative-over-time counts per bucket (not cumulated over `le`), one more than `bounds`."""
    quantiles: dict[float, float] = field(default_factory=dict)


@dataclass
class Family:
    kind: str  # counter, gauge, histogram, summary
    help: str
    series: dict[Labels, Series] = field(default_factory=dict)


@dataclass
class Native:
    """A family passed through from a Prometheus target: its samples per series, as the target exposed them."""

    kind: str  # prometheus_client's family type: counter, gauge, unknown, histogram, summary, info, ...
    help: str
    series: dict[tuple[str, Labels], tuple[float, list[Sample]]] = field(default_factory=dict)
    """(sample name, labels) -> (updated, samples); a histogram's key is its family name."""


class Exposition(Collector):  # type: ignore[misc]
    """The exporter's state; registered in its own CollectorRegistry (never the global one)."""

    def __init__(self, expire_after: float) -> None:
        self.expire_after = expire_after
        self.families: dict[str, Family] = {}
        self.native: dict[tuple[str, str], Native] = {}
        """Keyed by family name and type: `x` (gauge) and `x_total` (counter, family `x`) are two families."""
        self.type_conflicts = 0
        self.invalid = 0

    def add(self, metrics: list[Metric], now: float | None = None) -> None:
        now = time.time() if now is None else now
        for metric in metrics:
            try:
                self._add(metric, now)
            except (TypeError, ValueError, KeyError):  # KeyError: a `source` missing what its format has
                self.invalid += 1

    def _add(self, metric: Metric, now: float) -> None:
        name = metric_name(metric.name)
        labels: Labels = tuple(sorted((label_name(k), str(v)) for k, v in metric.tags.items()))
        source = metric.source
        if source is not None:
            form = source.get("format")
            if form == "prometheus" and self._native(metric, source, labels, now):
                return
            if form == "otlp":
                passed = otlp.samples(metric, source, labels, metric_name)
                if passed is not None:
                    family_name, kind_name, key, samples = passed
                    native = self.native.get((family_name, kind_name))
                    if native is None:
                        help_text = str(source.get("description") or "")
                        native = self.native[(family_name, kind_name)] = Native(kind_name, help_text)
                    native.series[key] = (now, samples)
                    return
        kind = metric.type
        value = metric.value
        if kind == "counter" and otlp.is_level_change(source):
            # An OTLP non-monotonic delta sum (an up-down counter's change): its running sum is a gauge
            level = self._family(metric, name, "gauge")
            if level is not None:
                running = level.series.get(labels)
                if running is None:
                    running = level.series[labels] = Series(now)
                running.updated = now
                running.value += finite_number(value)
            return
        if kind == "counter":
            prom_kind, name = "counter", name[: -len("_total")] if name.endswith("_total") else name
        elif kind in ("gauge", "set"):
            prom_kind = "gauge"
        elif kind == "distribution":
            prom_kind = "histogram" if isinstance(value, dict) and "bounds" in value else "summary"
        else:
            raise ValueError(f"unknown metric type {kind!r}")
        family = self._family(metric, name, prom_kind)
        if family is None:
            return
        series = family.series.get(labels)
        if series is None:
            series = family.series[labels] = Series(now)
        series.updated = now
        if prom_kind == "counter":
            series.value += finite_number(value)
        elif prom_kind == "gauge":
            series.value = float(len(value)) if kind == "set" and isinstance(value, list) else finite_number(value)
        elif prom_kind == "histogram":
            self._histogram(series, value)
        else:
            dist = as_distribution(value)
            series.count += dist.count
            series.sum += dist.sum
            if len(dist):
                series.quantiles = {q: dist.quantile(q) for q in QUANTILES}

    def _family(self, metric: Metric, name: str, prom_kind: str) -> Family | None:
        family = self.families.get(name)
        if family is None:
            unit = f" ({metric.unit})" if metric.unit else ""
            family = self.families[name] = Family(prom_kind, f"{metric.name}{unit}, from node-collector")
        elif family.kind != prom_kind:
            self.type_conflicts += 1
            return None
        return family

    def _native(self, metric: Metric, source: dict[str, Any], labels: Labels, now: float) -> bool:
        """Passes a Prometheus target's point through; False when it is not the target's series any more."""
        family_name = str(source["family"])
        kind = str(source["type"])
        if kind == "histogram":
            if metric.name != family_name:
                return False
            samples = _histogram_samples(family_name, dict(labels), source)
        else:
            if metric.name != source.get("sample"):
                return False  # renamed by a processor
            exemplar = _exemplar(source.get("exemplar"))
            samples = [Sample(metric.name, dict(labels), float(source["value"]), None, exemplar)]
            for quantile, value in (source.get("nonfinite_quantiles") or {}).items():
                samples.append(Sample(family_name, {**dict(labels), "quantile": str(quantile)}, float(value)))
        family = self.native.get((family_name, kind))
        if family is None:
            family = self.native[(family_name, kind)] = Native(kind, str(source.get("help") or ""))
        family.series[(metric.name, labels)] = (now, samples)
        return True

    @staticmethod
    def _histogram(series: Series, value: dict[str, Any]) -> None:
        bounds = [float(b) for b in value["bounds"]]
        counts = [float(c) for c in value["bucket_counts"]]
        if len(counts) != len(bounds) + 1:
            raise ValueError("bucket counts do not match the bounds")
        if series.bounds is None:
            series.bounds, series.buckets = bounds, [0.0] * len(counts)
        elif series.bounds != bounds:
            raise ValueError("the histogram's buckets changed")
        assert series.buckets is not None
        for i, c in enumerate(counts):
            series.buckets[i] += c
        series.count += float(value.get("count", sum(counts)))
        series.sum += float(value.get("sum", 0.0))

    def expire(self, now: float | None = None) -> None:
        oldest = (time.time() if now is None else now) - self.expire_after
        for name in list(self.families):
            family = self.families[name]
            family.series = {k: s for k, s in family.series.items() if s.updated >= oldest}
            if not family.series:
                del self.families[name]
        for key in list(self.native):
            native = self.native[key]
            native.series = {k: v for k, v in native.series.items() if v[0] >= oldest}
            if not native.series:
                del self.native[key]

    def series_count(self) -> int:
        return sum(len(f.series) for f in self.families.values()) + sum(len(f.series) for f in self.native.values())

    # -- prometheus_client's collector interface ---------------------------------------------------

    def collect(self) -> Iterator[Any]:
        self.expire()
        passed_names = {name for name, _ in self.native}
        for (name, _), native in sorted(self.native.items()):
            passed = PromFamily(name, native.help, native.kind)
            for _, samples in native.series.values():
                passed.samples.extend(samples)
            yield passed
        for name, family in sorted(self.families.items()):
            if name in passed_names:
                continue  # a family passed through from a target has this name: the target's series win
            keys = sorted({k for labels in family.series for k, _ in labels})
            if family.kind == "counter":
                out: Any = CounterMetricFamily(name, family.help, labels=keys)
                for labels, s in family.series.items():
                    out.add_metric(_values(keys, labels), s.value)
            elif family.kind == "gauge":
                out = GaugeMetricFamily(name, family.help, labels=keys)
                for labels, s in family.series.items():
                    out.add_metric(_values(keys, labels), s.value)
            elif family.kind == "histogram":
                out = HistogramMetricFamily(name, family.help, labels=keys)
                for labels, s in family.series.items():
                    assert s.bounds is not None and s.buckets is not None
                    running, buckets = 0.0, []
                    for bound, count in zip([*s.bounds, math.inf], s.buckets, strict=True):
                        running += count
                        buckets.append((_le(bound), running))
                    out.add_metric(_values(keys, labels), buckets, s.sum)
            else:
                out = SummaryMetricFamily(name, family.help, labels=keys)
                for labels, s in family.series.items():
                    values = _values(keys, labels)
                    out.add_metric(values, s.count, s.sum)
                    label_map = dict(zip(keys, values, strict=True))
                    for q, v in s.quantiles.items():
                        out.samples.append(Sample(name, {**label_map, "quantile": floatToGoString(q)}, v))
            yield out


def _exemplar(raw: Any) -> Exemplar | None:
    if not isinstance(raw, dict):
        return None
    return Exemplar(dict(raw["labels"]), float(raw["value"]), raw.get("timestamp"))


def _histogram_samples(name: str, labels: dict[str, str], source: dict[str, Any]) -> list[Sample]:
    les, buckets = list(source["le"]), [float(c) for c in source["buckets"]]
    if len(les) != len(buckets) or not les:
        raise ValueError("a histogram's le values do not match its buckets")
    exemplars = source.get("exemplars") or {}
    out = [
        Sample(f"{name}_bucket", {**labels, "le": str(le)}, count, None, _exemplar(exemplars.get(le)))
        for le, count in zip(les, buckets, strict=True)
    ]
    out.append(Sample(f"{name}_count", labels, float(source["count"])))
    out.append(Sample(f"{name}_sum", labels, float(source["sum"])))
    return out


def _values(keys: list[str], labels: Labels) -> list[str]:
    present = dict(labels)
    return [present.get(k, "") for k in keys]


def _le(bound: float) -> str:
    # Go's shortest float format, as client_golang and prometheus_client write `le`: 10000, not 10000.0
    return floatToGoString(float(bound))
