"""Histogram buckets as values (plugins/common/metrics/buckets.py): the invariants CloudWatch's statistics rely on."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from collector_plugins.common.metrics.distribution import as_distribution


@st.composite
def histograms(draw: st.DrawFn) -> tuple[dict[str, object], list[float]]:
    """An explicit-bucket histogram of real observations (and the observations)."""
    bounds = sorted(set(draw(st.lists(st.floats(-1e6, 1e6), min_size=0, max_size=8))))
    observations = draw(st.lists(st.floats(-2e6, 2e6), min_size=1, max_size=60))
    edges = [-math.inf, *bounds, math.inf]
    counts = [sum(1 for v in observations if lo < v <= hi) for lo, hi in itertools.pairwise(edges)]
    value: dict[str, object] = {"bounds": bounds, "bucket_counts": counts, "count": len(observations)}
    value["sum"] = math.fsum(observations)
    if draw(st.booleans()):
        value["min"], value["max"] = min(observations), max(observations)
    return value, observations


@settings(max_examples=300, deadline=None)
@given(histograms())
def test_values_stay_in_their_buckets_and_add_up_to_the_sum(case: tuple[dict[str, object], list[float]]) -> None:
    value, observations = case
    dist = as_distribution(value, limit=None)
    pairs = dist.pairs()
    assert math.fsum(c for _, c in pairs) == len(observations)
    known = "min" in value
    for v, _ in pairs:
        if known:
            assert min(observations) <= v <= max(observations)
    if known:
        # the exact extremes are values of their own, and the values add up to the exact sum
        assert pairs[0][0] == min(observations) and pairs[-1][0] == max(observations)
        weighted = math.fsum(v * c for v, c in pairs)
        assert math.isclose(weighted, value["sum"], rel_tol=1e-9, abs_tol=1e-6)  # type: ignore[arg-type]
    # each value stands inside its bucket (a bucket's closed ends included): at every bound, the values below
    # it are at most the observations up to it, and the values up to it at least that many
    for b in value["bounds"]:  # type: ignore[attr-defined]
        observed = sum(1 for v in observations if v <= b)
        assert math.fsum(c for v, c in pairs if v < b) <= observed <= math.fsum(c for v, c in pairs if v <= b)


def test_exponential_buckets_keep_exact_statistics() -> None:
    # scale 0: base 2; positive bucket i holds (2**i, 2**(i+1)], negative bucket i holds [-2**(i+1), -2**i)
    value = {
        "scale": 0,
        "zero_count": 2,
        "zero_threshold": 0.0,
        "positive": {"offset": 1, "bucket_counts": [3, 0, 1]},  # (2, 4] x3, (8, 16] x1
        "negative": {"offset": 0, "bucket_counts": [1]},  # [-2, -1) x1
        "count": 7,
        "sum": -1.5 + 0 + 0 + 2.5 + 3 + 4 + 9,
        "min": -1.5,
        "max": 9.0,
    }
    dist = as_distribution(value, limit=None)
    pairs = dist.pairs()
    assert (dist.count, dist.sum, dist.min, dist.max) == (7, 17.0, -1.5, 9.0)
    assert pairs[0] == (-1.5, 1.0) and pairs[-1] == (9.0, 1.0) and (0.0, 2.0) in pairs
    assert all(2.0 <= v <= 4.0 for v, c in pairs[2:-1])
    assert math.fsum(v * c for v, c in pairs) == 17.0
