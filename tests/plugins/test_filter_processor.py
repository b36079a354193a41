from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from collector.api import ComponentContext
from collector.events import LOGS, METRICS, TRACES, Batch, Metric
from collector_plugins.processors.filter.processor import Condition, Filter, FilterConfig


def make(ctx: ComponentContext, conditions: list[dict[str, Any]], **options: Any) -> Filter:
    return Filter(
        FilterConfig.model_validate({"type": "filter", "inputs": ["src"], "conditions": conditions, **options}), ctx
    )


def kept(proc: Filter, records: list[Any], kind: str = LOGS) -> list[Any]:
    out = proc.process(Batch(kind, records, nbytes=len(records) * 10))
    return [] if out is None else out.records


RECORDS = [
    {"id": 0, "level": "error", "status": 500, "duration": 1.5, "message": "upstream timeout", "tags": ["a", "b"]},
    {"id": 1, "level": "info", "status": 200, "duration": 0.02, "message": b"GET /healthz ok"},
    {"id": 2, "level": "warn", "status": "404", "message": "caf\xe9 not found", "user": None},
    {"id": 3, "level": "debug", "status": True, "message": b"bad \xff byte"},
    {"id": 4, "status": 503.0, "kubernetes": {"namespace": "prod-eu", "labels": {"app": "api"}}, "items": [{"n": 1}]},
]


@pytest.mark.parametrize(
    ("condition", "ids"),
    [
        ({"field": "level", "equals": "error"}, [0]),
        ({"field": "status", "equals": 500}, [0]),
        ({"field": "status", "equals": 503}, [4]),
        ({"field": "status", "equals": True}, [3]),
        ({"field": "status", "equals": 1}, []),
        ({"field": "user", "equals": None}, [2]),
        ({"field": "message", "equals": "GET /healthz ok"}, [1]),
        ({"field": "level", "not_equals": "info"}, [0, 2, 3, 4]),
        ({"field": "status", "not_equals": 500}, [1, 2, 3, 4]),
        ({"field": "level", "in": ["error", "warn"]}, [0, 2]),
        ({"field": "status", "in": [200, "404", False]}, [1, 2]),
        ({"field": "status", "in": [True]}, [3]),
        ({"field": "user", "in": [None]}, [2]),
        ({"field": "message", "in": ["GET /healthz ok"]}, [1]),
        ({"field": "message", "matches": "^GET "}, [1]),
        ({"field": "message", "matches": "(?i)TIMEOUT|found"}, [0, 2]),
        ({"field": "message", "matches": "\ufffd"}, [3]),
        ({"field": "status", "matches": "^5\\d\\d"}, [0, 4]),
        ({"field": "message", "contains": "healthz"}, [1]),
        ({"field": "message", "contains": "café"}, [2]),
        ({"field": "tags", "contains": "b"}, [0]),
        ({"field": "user", "exists": True}, [2]),
        ({"field": "level", "exists": False}, [4]),
        ({"field": "status", "gt": 404}, [0, 4]),
        ({"field": "status", "gte": 404}, [0, 2, 4]),
        ({"field": "status", "lt": 404}, [1]),
        ({"field": "status", "lte": 404}, [1, 2]),
        ({"field": "duration", "lt": 1}, [1]),
        ({"field": "kubernetes.namespace", "matches": "^prod-"}, [4]),
        ({"field": "kubernetes.labels.app", "equals": "api"}, [4]),
        ({"field": "kubernetes.missing.deeper", "exists": False}, [0, 1, 2, 3, 4]),
        ({"field": "level.deeper", "exists": True}, []),
        ({"field": "items.0.n", "equals": 1}, [4]),
        ({"field": "items.5.n", "exists": True}, []),
    ],
)
def test_operators(ctx: ComponentContext, condition: dict[str, Any], ids: list[int]) -> None:
    proc = make(ctx, [condition])
    assert [r["id"] for r in kept(proc, [dict(r) for r in RECORDS])] == ids


def test_literal_dotted_key_wins(ctx: ComponentContext) -> None:
    proc = make(ctx, [{"field": "k8s.ns", "equals": "flat"}])
    records = [{"k8s.ns": "flat"}, {"k8s": {"ns": "flat"}}, {"k8s.ns": "other", "k8s": {"ns": "flat"}}]
    assert kept(proc, records) == records[:2]


@pytest.mark.parametrize(
    ("match", "action", "ids"),
    [
        ("all", "keep", [0]),
        ("any", "keep", [0, 2, 3, 4]),
        ("all", "drop", [1, 2, 3, 4]),
        ("any", "drop", [1]),
    ],
)
def test_match_and_action(ctx: ComponentContext, match: str, action: str, ids: list[int]) -> None:
    conditions = [{"field": "status", "gte": 404}, {"field": "level", "in": ["error", "debug"]}]
    proc = make(ctx, conditions, match=match, action=action)
    assert [r["id"] for r in kept(proc, list(RECORDS))] == ids


@pytest.mark.parametrize("match", ["all", "any"])
def test_many_conditions(ctx: ComponentContext, match: str) -> None:
    conditions = [{"field": "status", "exists": True}, {"field": "id", "lt": 3}, {"field": "message", "exists": True}]
    proc = make(ctx, conditions, match=match)
    assert [r["id"] for r in kept(proc, list(RECORDS))] == ([0, 1, 2] if match == "all" else [0, 1, 2, 3, 4])


def test_counts_filtered_and_scales_nbytes(ctx: ComponentContext) -> None:
    proc = make(ctx, [{"field": "level", "equals": "error"}])
    batch = Batch(LOGS, list(RECORDS), nbytes=1000)
    out = proc.process(batch)
    assert out is not None and len(out) == 1 and out.nbytes == 200
    assert proc.filtered == 4
    everything = [{"level": "error"}] * 3
    same = Batch(LOGS, everything, nbytes=30)
    assert proc.process(same) is same, "nothing removed: the batch passes as it is"
    assert proc.process(Batch(LOGS, [{"level": "info"}], nbytes=5)) is None
    assert proc.filtered == 5
    assert Filter.mutates_records is False


def test_metrics_fields(ctx: ComponentContext) -> None:
    metrics = [
        Metric("http.latency", "distribution", [1.0, 2.0], {"route": "/checkout"}, 1.0, "Milliseconds"),
        Metric("http.requests", "counter", 5.0, {"route": "/checkout", "status": "500"}),
        Metric("queue.depth", "gauge", 100.0, {}),
    ]
    cases = [
        ([{"field": "name", "matches": "^http\\."}], [0, 1]),
        ([{"field": "type", "equals": "gauge"}], [2]),
        ([{"field": "value", "gt": 10}], [2]),
        ([{"field": "tags.route", "equals": "/checkout"}, {"field": "tags.status", "exists": False}], [0]),
        ([{"field": "tags.status", "gte": 500}], [1]),
        ([{"field": "unit", "exists": True}], [0]),
        ([{"field": "level", "exists": True}], []),
    ]
    for conditions, expected in cases:
        proc = make(ctx, conditions)
        assert [metrics.index(m) for m in kept(proc, metrics, METRICS)] == expected, conditions


def test_traces(ctx: ComponentContext) -> None:
    proc = make(ctx, [{"field": "http.response.status", "gte": 500}])
    segments = [
        {"name": "a", "http": {"response": {"status": 502}}},
        {"name": "b", "http": {"response": {"status": 200}}},
    ]
    assert [s["name"] for s in kept(proc, segments, TRACES)] == ["a"]


def test_yaml_form(ctx: ComponentContext) -> None:
    body = yaml.safe_load(
        """
        type: filter
        inputs: [app]
        action: drop
        conditions:
          - {field: level, in: [debug, trace]}
          - field: path
            matches: ^/health
        match: any
        """
    )
    proc = Filter(FilterConfig.model_validate(body), ctx)
    records = [{"level": "debug"}, {"path": "/healthz"}, {"level": "info", "path": "/api"}]
    assert kept(proc, records) == [records[2]]


@pytest.mark.parametrize(
    ("condition", "error"),
    [
        ({"field": "message", "matches": "(unclosed"}, "invalid regular expression '\\(unclosed'"),
        ({"field": "message"}, "exactly one operator"),
        ({"field": "message", "equals": "a", "contains": "b"}, "found: equals, contains"),
        ({"field": "status", "gt": True}, "must be a number"),
        ({"field": "status", "gt": "5"}, "must be a number"),
        ({"field": "", "exists": True}, "field"),
        ({"field": "x", "in": []}, "in"),
        ({"field": "x", "startswith": "a"}, "Extra inputs are not permitted"),
    ],
)
def test_condition_errors(condition: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        FilterConfig.model_validate({"type": "filter", "inputs": ["s"], "conditions": [condition]})


def test_config_needs_conditions() -> None:
    with pytest.raises(ValidationError):
        FilterConfig.model_validate({"type": "filter", "inputs": ["s"], "conditions": []})
    with pytest.raises(ValidationError):
        FilterConfig.model_validate(
            {"type": "filter", "inputs": ["s"], "conditions": [{"field": "a", "exists": 1}], "action": "keep_all"}
        )


def test_condition_introspection() -> None:
    condition = Condition.model_validate({"field": "x", "in": [1, 2]})
    assert (condition.operator, condition.operand) == ("in", [1, 2])
    assert "in" in FilterConfig.model_json_schema()["$defs"]["Condition"]["properties"]
