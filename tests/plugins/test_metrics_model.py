"""The metric model: distributions (percentiles kept), per-interval aggregation, the series limit."""

from __future__ import annotations

import logging
import math
import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.buffer.codec import METRIC_EXT, decode_batch, encode
from collector.dlq import _default, _restore
from collector.events import METRICS, Batch, Metric
from collector_plugins.common.metrics.aggregator import Aggregator, check_interval
from collector_plugins.common.metrics.distribution import (
    EXACT_LIMIT,
    RELATIVE_ERROR,
    Distribution,
    as_distribution,
    quantile,
)


def exact_quantile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    rank = max(math.ceil(q * len(ordered)), 1)
    return ordered[rank - 1]


# ----------------------------------------------------------------- distributions


def test_few_values_are_kept_exactly() -> None:
    dist = Distribution()
    for v in [5.0, 1.0, 5.0, 3.0]:
        dist.add(v)
    dist.add(2.0, weight=10)  # a sample rate of 0.1
    assert dist.pairs() == [(1.0, 1.0), (2.0, 10.0), (3.0, 1.0), (5.0, 2.0)]
    assert (dist.count, dist.sum, dist.min, dist.max) == (14.0, 34.0, 1.0, 5.0)
    assert not dist.bucketed
    assert dist.quantile(0.5) == 2.0
    assert dist.quantile(1.0) == 5.0


@settings(max_examples=40, deadline=None)
@given(
    samples=st.lists(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False), min_size=EXACT_LIMIT + 1, max_size=600),
    q=st.sampled_from([0.5, 0.9, 0.99, 0.999]),
)
def test_many_values_keep_percentiles_within_one_percent(samples: list[float], q: float) -> None:
    dist = Distribution()
    dist.add_values(samples)
    assert dist.bucketed or len(set(samples)) <= EXACT_LIMIT
    # Statistics stay exact whatever happens to the values.
    assert dist.count == len(samples)
    assert dist.sum == pytest.approx(math.fsum(samples))
    assert (dist.min, dist.max) == (min(samples), max(samples))
    expected = exact_quantile(samples, q)
    assert abs(dist.quantile(q) - expected) <= RELATIVE_ERROR * expected * 1.0001


def _sent_statistics(pairs: list[tuple[float, float]]) -> tuple[float, float, float, float]:
    """What CloudWatch computes from Values/Counts: SampleCount, Sum, Minimum, Maximum."""
    return (
        math.fsum(c for _, c in pairs),
        math.fsum(v * c for v, c in pairs),
        min(v for v, c in pairs if c > 0),
        max(v for v, c in pairs if c > 0),
    )


@settings(max_examples=60, deadline=None)
@given(
    samples=st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=EXACT_LIMIT + 1, max_size=600),
    weights=st.lists(st.sampled_from([1.0, 1.0, 2.0, 10.0, 0.5]), min_size=1, max_size=7),
    split=st.integers(min_value=0, max_value=600),
)
def test_bucketed_values_carry_the_exact_statistics(samples: list[float], weights: list[float], split: int) -> None:
    """CloudWatch computes Sum/Min/Max from the Values/Counts it is sent: those of a bucketed
    distribution (added, merged, sample-rated) give the exact figures, and stay sorted, within 1 %."""
    a, b = Distribution(), Distribution()
    expected_sum = 0.0
    for i, v in enumerate(samples):
        w = weights[i % len(weights)]
        (a if i < split else b).add(v, w)
        expected_sum += v * w
    a.merge(b)
    pairs = a.pairs()
    count, total, low, high = _sent_statistics(pairs)
    assert count == pytest.approx(a.count)
    assert total == pytest.approx(expected_sum, rel=1e-9, abs=1e-6)
    assert (low, high) == (min(samples), max(samples))
    assert [v for v, _ in pairs] == sorted(v for v, _ in pairs)
    value = a.to_value()
    assert (value["min"], value["max"]) == (low, high) and value["sum"] == pytest.approx(expected_sum, abs=1e-6)


def test_500_distinct_values_read_back_exactly() -> None:
    dist = Distribution()
    dist.add_values([float(v) for v in range(0, 1000, 2)])
    assert dist.bucketed
    count, total, low, high = _sent_statistics(dist.pairs())
    assert (count, low, high) == (500.0, 0.0, 998.0)
    assert total == pytest.approx(249500.0, rel=1e-12)  # the buckets' midpoints gave 249575.28 and Max 993.53


def test_bucketing_bounds_memory_and_handles_zero_and_negatives() -> None:
    rnd = random.Random(7)
    dist = Distribution()
    samples = [rnd.lognormvariate(3, 1.5) for _ in range(20_000)] + [0.0] * 10 + [-5.0] * 3
    dist.add_values(samples)
    assert dist.bucketed
    assert len(dist) < 1000
    assert dist.counts[0.0] == 10
    assert sum(c for v, c in dist.pairs() if v < 0) == 3
    assert dist.quantile(0.0001) == pytest.approx(-5.0, rel=RELATIVE_ERROR)


def test_merge_adds_everything() -> None:
    a, b = Distribution(), Distribution()
    a.add_values([1.0, 2.0])
    b.add_values([2.0, 10.0])
    a.merge(b)
    assert a.pairs() == [(1.0, 1.0), (2.0, 2.0), (10.0, 1.0)]
    assert (a.count, a.sum, a.min, a.max) == (4.0, 15.0, 1.0, 10.0)


def test_value_forms() -> None:
    assert as_distribution([1, 2, 2]).pairs() == [(1.0, 1.0), (2.0, 2.0)]
    weighted = as_distribution({"values": [1.0, 4.0], "counts": [3, 1]})
    assert (weighted.count, weighted.sum) == (4.0, 7.0)
    stats = as_distribution({"sum": 10.0, "count": 4, "min": 1.0, "max": 4.0})
    assert len(stats) == 0 and (stats.count, stats.sum, stats.min, stats.max) == (4.0, 10.0, 1.0, 4.0)
    # A statistic set given with (bucketed) values wins over what the values would say.
    both = as_distribution({"values": [1.01], "counts": [2], "sum": 2.0, "count": 2, "min": 1.0, "max": 1.0})
    assert (both.sum, both.min) == (2.0, 1.0)
    round_trip = as_distribution(Distribution().to_value() | {"values": [3.0], "counts": [1.0], "count": 1, "sum": 3})
    assert round_trip.quantile(0.5) == 3.0
    for bad in ["12", {"values": [1], "counts": [1, 2]}, {"counts": [1]}, [True], {"values": [1], "counts": [-1]}]:
        with pytest.raises(ValueError):
            as_distribution(bad)


def test_quantile_of_nothing_is_nan() -> None:
    assert math.isnan(quantile([], 0.5))


# ----------------------------------------------------------------- aggregation


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Losses:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, reason: str, events: int) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + events


def make(interval: float = 10.0, max_series: int = 100, start: float = 1000.0) -> tuple[Aggregator, Clock, Losses]:
    clock, losses = Clock(start), Losses()
    agg = Aggregator(interval, max_series, loss=losses, log=logging.getLogger("test.agg"), component="t", clock=clock)
    return agg, clock, losses


def by_name(metrics: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Metric]:
    return {(m.name, tuple(sorted(m.tags.items()))): m for m in metrics}


def test_one_point_per_series_and_window() -> None:
    agg, clock, _ = make()
    agg.add(
        [
            Metric("req", "counter", 1.0, {"route": "/a", "code": "200"}, 1001.0),
            Metric("req", "counter", 2.0, {"code": "200", "route": "/a"}, 1002.0),  # same series, tags reordered
            Metric("req", "counter", 5.0, {"route": "/b"}, 1003.0),
            Metric("depth", "gauge", 3.0, {}, 1004.0),
            Metric("depth", "gauge", 7.0, {}, 1005.0),
            Metric("lat", "distribution", [10.0, 20.0], {}, 1006.0, "Milliseconds"),
            Metric("lat", "distribution", {"values": [30.0], "counts": [2]}, {}, 1007.0),
            Metric("users", "set", ["u1", "u2"], {}, 1008.0),
            Metric("users", "set", "u1", {}, 1009.0),
        ]
    )
    assert agg.flush(1009.9) == []  # the window [1000, 1010) has not ended
    clock.now = 1010.5
    out = by_name(agg.flush())
    assert out[("req", (("code", "200"), ("route", "/a")))].value == 3.0
    assert out[("req", (("route", "/b"),))].value == 5.0
    assert out[("depth", ())].value == 7.0
    lat = out[("lat", ())]
    assert lat.unit == "Milliseconds"
    assert lat.value == {
        "values": [10.0, 20.0, 30.0],
        "counts": [1.0, 1.0, 2.0],
        "sum": 90.0,
        "count": 4.0,
        "min": 10.0,
        "max": 30.0,
    }
    assert out[("users", ())].value == ["u1", "u2"]
    for m in out.values():
        assert (m.timestamp, m.interval) == (1000.0, 10.0)
    assert agg.flush(1021.0) == []  # nothing new: nothing emitted (no zero points)


def test_points_go_to_the_window_of_their_timestamp() -> None:
    agg, _, _ = make(interval=60.0, start=1200.0)
    agg.add(
        [
            Metric("c", "counter", 1.0, {}, 1199.0),  # the previous minute
            Metric("c", "counter", 2.0, {}, 1230.0),  # this one
            Metric("c", "counter", 4.0, {}, 1260.0),  # the next one
            Metric("c", "counter", 8.0, {}, 0.0),  # no timestamp: the current window
        ]
    )
    first = agg.flush(1200.5)  # only the previous minute has ended
    assert [(m.timestamp, m.value) for m in first] == [(1140.0, 1.0)]
    second = agg.flush(1260.5)
    assert [(m.timestamp, m.value) for m in second] == [(1200.0, 10.0)]
    # The window opened early for the 1260 point is now the current one.
    agg.add([Metric("c", "counter", 16.0, {}, 1261.0)])
    assert [(m.timestamp, m.value) for m in agg.flush(1320.0)] == [(1260.0, 20.0)]


def test_flush_all_emits_the_open_window() -> None:
    agg, _, _ = make()
    agg.add([Metric("c", "counter", 1.0, {}, 1001.0), Metric("c", "counter", 1.0, {}, 2001.0)])
    assert sorted(m.timestamp for m in agg.flush_all()) == [1000.0, 2000.0]
    assert agg.series_count == 0


def test_series_limit_drops_counts_and_logs_once_per_window(caplog: pytest.LogCaptureFixture) -> None:
    agg, clock, losses = make(max_series=3)
    points = [Metric("ok", "counter", 1.0, {"i": str(i)}, 1001.0) for i in range(3)]
    points += [Metric("user_requests", "counter", 1.0, {"user": str(i)}, 1001.0) for i in range(50)]
    points += [Metric("ok", "counter", 1.0, {"i": "0"}, 1002.0)]  # an existing series still aggregates
    with caplog.at_level(logging.WARNING, logger="test.agg"):
        agg.add(points)
        assert losses.counts == {}  # reported at the window's end, once
        clock.now = 1010.0
        out = agg.flush()
    assert len(out) == 3 and by_name(out)[("ok", (("i", "0"),))].value == 2.0
    assert losses.counts == {"cardinality_limit": 50}
    warnings = [r for r in caplog.records if "series limit" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].fields["metrics"] == "user_requests"  # type: ignore[attr-defined]
    assert warnings[0].fields["dropped_points"] == 50  # type: ignore[attr-defined]
    assert agg.dropped == 50
    # Next window: room again.
    agg.add([Metric("user_requests", "counter", 1.0, {"user": "x"}, 1011.0)])
    assert len(agg.flush(1020.0)) == 1


def test_invalid_values_are_counted_not_raised() -> None:
    agg, _, losses = make()
    agg.add(
        [
            Metric("c", "counter", "7", {}, 1001.0),
            Metric("g", "gauge", math.nan, {}, 1001.0),
            Metric("d", "distribution", {"bogus": 1}, {}, 1001.0),
            Metric("x", "histogram", 1.0, {}, 1001.0),  # type: ignore[arg-type]
            Metric("c", "counter", 1.0, {}, 1001.0),
        ]
    )
    assert losses.counts == {"invalid_metric": 4}
    assert [m.value for m in agg.flush(1010.0) if m.name == "c"] == [1.0]


def test_gauges_remember_their_last_value_for_a_while() -> None:
    agg, _, _ = make()
    agg.add([Metric("g", "gauge", 5.0, {}, 1001.0)])
    agg.flush(1010.0)
    series = agg.new_series(("gauge", "g", ()), None)
    assert series is not None and series.value == 5.0  # a delta would apply to 5
    agg.flush(1020.0)
    agg.flush(1010.0 + 3600.0 + 20)
    fresh = agg.new_series(("gauge", "g", ()), None)
    assert fresh is not None and fresh.value == 0.0  # forgotten after gauge_retention


@pytest.mark.parametrize("good", [1, 10, 30, 60, 300, 3600])
def test_intervals_that_line_up(good: int) -> None:
    assert check_interval(good) == good


@pytest.mark.parametrize("bad", [0, 0.5, 7, 45, 90, 7200])
def test_intervals_that_do_not(bad: float) -> None:
    with pytest.raises(ValueError):
        check_interval(bad)


# ----------------------------------------------------------------- the record travels with its interval


def test_interval_survives_disk_buffer_and_dead_letters() -> None:
    metric = Metric("lat", "distribution", {"values": [1.0], "counts": [2.0]}, {"a": "b"}, 1000.0, "Seconds", 10.0)
    payload, exact = encode(Batch(METRICS, [metric], 10))
    assert exact
    assert decode_batch(payload).records == [metric]
    assert decode_batch(payload).records[0].interval == 10.0
    assert _restore(_default(metric)) == metric
    assert metric.to_dict()["interval"] == 10.0
    assert "interval" not in Metric("m", "gauge", 1.0).to_dict()  # unchanged for raw points
    assert metric.copy().interval == 10.0


def test_frames_written_before_the_interval_field_still_decode() -> None:
    old = msgpack.ExtType(METRIC_EXT, msgpack.packb(["m", "gauge", 1.5, {"k": "v"}, 7.0, None], use_bin_type=True))
    payload = msgpack.packb([METRICS, 1, [old]], use_bin_type=True)
    (metric,) = decode_batch(payload).records
    assert metric == Metric("m", "gauge", 1.5, {"k": "v"}, 7.0)
    assert metric.interval == 0.0


def test_histogram_buckets_as_a_distribution() -> None:
    # Prometheus buckets (le 1, 5, 10, +Inf), counts per bucket: 2 in (0,1], 3 in (1,5], 0, 1 above 10.
    dist = as_distribution({"bounds": [1.0, 5.0, 10.0], "bucket_counts": [2, 3, 0, 1], "sum": 30.0, "count": 6})
    # middles; the +Inf bucket (unbounded) takes what the sum needs beyond them: the values add up to the sum
    assert dist.pairs() == [(0.5, 2.0), (3.0, 3.0), (20.0, 1.0)]
    assert (dist.count, dist.sum) == (6.0, 30.0)
    assert dist.quantile(0.5) == 3.0
    # without a sum, the +Inf bucket is at the last bound
    assert as_distribution({"bounds": [1.0, 5.0], "bucket_counts": [1, 0, 1], "count": 2}).pairs()[-1] == (5.0, 1.0)
    for bad in [
        {"bounds": [1.0, 5.0], "bucket_counts": [1, 2]},
        {"bounds": [5.0, 1.0], "bucket_counts": [1, 2, 3]},
        {"bounds": [1.0], "bucket_counts": [1, -2]},
    ]:
        with pytest.raises(ValueError):
            as_distribution(bad)
