"""A rule's batch mask means exactly what the `filter` processor's predicate means, record by record."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.events import LOGS, METRICS, Metric
from collector_plugins.common.alerting.masks import Columns, compile_mask
from collector_plugins.processors.filter.processor import Condition, FilterConfig, compile_filter

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 600),
    st.floats(-10, 1000, allow_nan=False),
    st.sampled_from(["error", "info", "503", "timeout here", "", "prod"]),
    st.sampled_from([b"error", b"timeout", b"\xff\xfe"]),
    st.lists(st.sampled_from(["timeout", "x"]), max_size=2),
)
RECORD = st.dictionaries(st.sampled_from(["level", "status", "msg", "k8s"]), VALUES, max_size=4).map(
    lambda r: {**r, "k8s": {"ns": r["k8s"]}} if "k8s" in r else r
)
CONDITIONS = [
    {"field": "level", "equals": "error"},
    {"field": "level", "not_equals": "info"},
    {"field": "status", "gte": 500},
    {"field": "status", "lt": 100.5},
    {"field": "status", "equals": 503},
    {"field": "level", "in": ["error", "503", None, True]},
    {"field": "level", "in": ["error", "503"]},
    {"field": "msg", "in": ["timeout"]},
    {"field": "msg", "matches": "time.ut"},
    {"field": "msg", "contains": "timeout"},
    {"field": "k8s.ns", "equals": "prod"},
    {"field": "level", "exists": True},
    {"field": "status", "exists": False},
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(RECORD, max_size=20),
    st.lists(st.sampled_from(range(len(CONDITIONS))), min_size=1, max_size=3),
    st.sampled_from(["all", "any"]),
)
def test_mask_equals_filter_predicate(records: list[dict[str, Any]], picks: list[int], match: str) -> None:
    conditions = [Condition.model_validate(CONDITIONS[i]) for i in picks]
    config = FilterConfig(type="filter", inputs=["x"], conditions=conditions, match=match)  # type: ignore[arg-type]
    predicate = compile_filter(config, metrics=False)
    mask = compile_mask(conditions, match)(Columns(LOGS, records))
    assert mask is not None
    assert [bool(m) for m in mask] == [bool(predicate(r)) for r in records]


def test_metric_fields() -> None:
    metrics = [Metric("cpu", "gauge", 95.0, {"host": "a"}), Metric("mem", "gauge", 10.0, {"host": "b"})]
    conditions = [Condition.model_validate({"field": "tags.host", "equals": "a"})]
    assert compile_mask(conditions, "all")(Columns(METRICS, metrics)) == [True, False]
