"""Prometheus metric families -> metric records, each type keeping its meaning.

Cumulative Prometheus values become what happened during the scrape interval,
the way CloudWatch and every other interval-based output read them:

- counter: a `counter` point with the increase since the previous scrape (named like the sample,
  `http_requests_total`); a target's first scrape only sets the baseline, a series that appears later
  started from zero (Prometheus counters do); a value lower than the previous one is a restart, whose
  increase is the new value itself;
- gauge, untyped, info and stateset samples: `gauge` points, as they are;
- histogram: a `distribution` point holding the buckets' increases (`bounds`, `bucket_counts` per bucket,
  the last for +Inf, `sum`, `count`), so percentiles can be estimated downstream and the
  `prometheus_exporter` output exposes a histogram again; a restart is detected as for counters;
- summary: precomputed quantiles cannot be re-aggregated, so each stays a `gauge` point tagged
  `quantile`, and `_sum` / `_count` become counter points (increases), as Prometheus exposes them.

A target's first scrape only sets the baseline: its counters are points of increase 0 and its
histograms distributions of count 0 (nothing is known to have happened yet), emitted so that
`prometheus_exporter` exposes every series from the first scrape on.

Every point also carries `source` (see `collector.events.Metric`): the family's type, name and HELP, and
the sample's cumulative value as the target exposed it (a histogram: its `le` label values as written,
cumulative bucket counts, `_sum`, `_count`), plus the exemplar of an OpenMetrics sample; a summary's `_count`
point also carries the summary's non-finite quantiles (`NaN`: no observation in its window), which no other
output could take as points. With it `prometheus_exporter` re-exposes the same series with the same
values instead of a sum of increases.

`Deltas` remembers one scrape's cumulative values per target (only the series
of its last scrape: a series that disappears is forgotten).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import Any

from collector.events import Metric

Key = tuple[str, tuple[tuple[str, str], ...]]


def _source(family: Any, **values: Any) -> dict[str, Any]:
    return {"format": "prometheus", "type": family.type, "family": family.name, "help": family.documentation, **values}


def _exemplar(sample: Any) -> dict[str, Any] | None:
    ex = getattr(sample, "exemplar", None)
    if ex is None:
        return None
    return {"labels": dict(ex.labels), "value": float(ex.value), "timestamp": ex.timestamp}


def _labels(labels: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    out = dict(extra)
    out.update(labels)  # what the target says about itself wins over the scrape's own labels
    return out


class Deltas:
    """Previous cumulative values of one target's series."""

    def __init__(self) -> None:
        self.previous: dict[Key, Any] = {}
        self.known = False
        """Whether the target was scraped before: a series new in a known target started from zero."""

    def convert(self, families: Iterable[Any], tags: dict[str, str], now: float, interval: float) -> list[Metric]:
        """The metric records of one scrape's families."""
        current: dict[Key, Any] = {}
        out: list[Metric] = []
        for family in families:
            kind = family.type
            if kind in ("counter", "summary"):
                self._cumulative(family, tags, now, interval, current, out)
            elif kind == "histogram":
                self._histogram(family, tags, now, interval, current, out)
            else:  # gauge, untyped / unknown, info, stateset, gaugehistogram samples
                for sample in family.samples:
                    if math.isfinite(sample.value):
                        source = _source(family, sample=sample.name, value=float(sample.value))
                        labels = _labels(sample.labels, tags)
                        out.append(Metric(sample.name, "gauge", float(sample.value), labels, now, None, 0.0, source))
        self.previous = current
        self.known = True
        return out

    def _increase(self, key: Key, value: float, current: dict[Key, Any]) -> float:
        current[key] = value
        before = self.previous.get(key)
        if before is None:
            return value if self.known else 0.0
        return value - before if value >= before else value

    def _cumulative(
        self, family: Any, tags: dict[str, str], now: float, interval: float, current: dict[Key, Any], out: list[Metric]
    ) -> None:
        """A counter's samples and a summary's `_sum` / `_count` as increases; a summary's quantiles as gauges."""
        summary = family.type == "summary"
        # A summary's NaN quantile (no observation in its window) is no number to send anywhere, but it is part
        # of the target's series: it rides on the `_count` point of its label set, for the exporter only.
        nan_quantiles: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        if summary:
            for sample in family.samples:
                if "quantile" in sample.labels and not math.isfinite(sample.value):
                    rest = {k: v for k, v in sample.labels.items() if k != "quantile"}
                    nan_quantiles.setdefault(tuple(sorted(rest.items())), {})[sample.labels["quantile"]] = str(
                        sample.value
                    )
        for sample in family.samples:
            if sample.name.endswith("_created") or not math.isfinite(sample.value):
                continue
            labels = _labels(sample.labels, tags)
            source = _source(family, sample=sample.name, value=float(sample.value))
            if nan_quantiles and sample.name.endswith("_count"):
                quantiles = nan_quantiles.get(tuple(sorted(sample.labels.items())))
                if quantiles:
                    source["nonfinite_quantiles"] = quantiles  # {"0.5": "nan"}: strings survive JSON (the DLQ)
            exemplar = _exemplar(sample)
            if exemplar is not None:
                source["exemplar"] = exemplar
            if summary and not sample.name.endswith(("_sum", "_count")):
                out.append(Metric(sample.name, "gauge", float(sample.value), labels, now, None, interval, source))
                continue
            key = (sample.name, tuple(sorted(labels.items())))
            increase = self._increase(key, float(sample.value), current)
            out.append(Metric(sample.name, "counter", increase, labels, now, None, interval, source))

    def _histogram(
        self, family: Any, tags: dict[str, str], now: float, interval: float, current: dict[Key, Any], out: list[Metric]
    ) -> None:
        series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        for sample in family.samples:
            labels = dict(sample.labels)
            le = labels.pop("le", None)
            entry = series.setdefault(
                tuple(sorted(labels.items())), {"buckets": {}, "sum": 0.0, "count": None, "le": {}, "exemplars": {}}
            )
            if sample.name.endswith("_bucket") and le is not None:
                entry["buckets"][float(le)] = float(sample.value)
                entry["le"][float(le)] = le  # as the target wrote it: `10000` stays `10000`
                exemplar = _exemplar(sample)
                if exemplar is not None:
                    entry["exemplars"][le] = exemplar
            elif sample.name.endswith("_sum"):
                entry["sum"] = float(sample.value)
            elif sample.name.endswith("_count"):
                entry["count"] = float(sample.value)
        for labels_key, entry in series.items():
            buckets = sorted(entry["buckets"].items())
            if not buckets or buckets[-1][0] != math.inf:
                continue  # a histogram without its +Inf bucket is malformed: nothing safe to say
            bounds = [b for b, _ in buckets[:-1]]
            cumulative = [c for _, c in buckets]
            count = entry["count"] if entry["count"] is not None else cumulative[-1]
            labels = _labels(dict(labels_key), tags)
            source = _source(
                family,
                le=[entry["le"][b] for b, _ in buckets],
                buckets=cumulative,
                sum=entry["sum"],
                count=count,
            )
            if entry["exemplars"]:
                source["exemplars"] = entry["exemplars"]
            key = (family.name, tuple(sorted(labels.items())))
            state = (bounds, cumulative, entry["sum"], count)
            current[key] = state
            before = self.previous.get(key)
            if before is None and self.known:
                before = (bounds, [0.0] * len(cumulative), 0.0, 0.0)  # a new series starts from zero
            if before is None or before[0] != bounds:  # the target's first scrape (or changed buckets): a baseline
                before = (bounds, cumulative, entry["sum"], count)
            restarted = count < before[3] or any(c < p for c, p in zip(cumulative, before[1], strict=True))
            if restarted:
                delta_cum, delta_sum, delta_count = cumulative, entry["sum"], count
            else:
                delta_cum = [c - p for c, p in zip(cumulative, before[1], strict=True)]
                delta_sum, delta_count = entry["sum"] - before[2], count - before[3]
            per_bucket = [delta_cum[0]] + [b - a for a, b in itertools.pairwise(delta_cum)]
            value = {"bounds": bounds, "bucket_counts": per_bucket, "sum": delta_sum, "count": delta_count}
            out.append(Metric(family.name, "distribution", value, labels, now, None, interval, source))
