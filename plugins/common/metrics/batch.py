"""A batch of metric records, sized the same way by every metric input."""

from __future__ import annotations

from collector.events import METRICS, Batch, Metric

METRIC_NBYTES = 64
"""What one metric record counts for in the byte counters (records are objects, not encoded bytes)."""


def metric_batch(points: list[Metric]) -> Batch:
    return Batch(METRICS, points, METRIC_NBYTES * len(points))
