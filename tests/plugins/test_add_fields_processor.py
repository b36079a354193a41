from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from collector.api import ComponentContext
from collector.events import LOGS, METRICS, TRACES, Batch, Metric
from collector_plugins.processors.add_fields.processor import AddFields, AddFieldsConfig


def make(ctx: ComponentContext, **options: Any) -> AddFields:
    return AddFields(AddFieldsConfig(type="add_fields", inputs=["src"], **options), ctx)


def test_adds_and_overwrites_with_host_facts(ctx: ComponentContext) -> None:
    proc = make(
        ctx,
        fields={"env": "prod", "node": "{host}", "where": "{host}/{region}", "braces": "{{host}}", "n": 3, "ok": True},
    )
    batch = Batch(LOGS, [{"timestamp": 1.0, "message": "a", "env": "dev"}, {"timestamp": 2.0, "message": b"b"}])
    out = proc.process(batch)
    assert out is batch
    for record in out.records:
        assert record["env"] == "prod"
        assert record["node"] == "testhost"
        assert record["where"] == "testhost/eu-west-1"
        assert record["braces"] == "{host}"
        assert record["n"] == 3 and record["ok"] is True
    assert out.records[1]["message"] == b"b"


def test_overwrite_false_keeps_existing_values(ctx: ComponentContext) -> None:
    proc = make(ctx, fields={"env": "prod", "team": "core"}, overwrite=False)
    out = proc.process(Batch(LOGS, [{"timestamp": 1.0, "message": "a", "env": "dev"}, {"timestamp": 1.0, "env": None}]))
    assert out is not None
    assert out.records[0] == {"timestamp": 1.0, "message": "a", "env": "dev", "team": "core"}
    assert out.records[1]["env"] is None, "an existing null is a value too"


def test_traces_get_top_level_fields(ctx: ComponentContext) -> None:
    proc = make(ctx, fields={"service_env": "prod"})
    out = proc.process(Batch(TRACES, [{"trace_id": "1-0-0", "id": "a", "name": "s"}]))
    assert out is not None and out.records[0]["service_env"] == "prod"


@pytest.mark.parametrize("overwrite", [True, False])
def test_metrics_get_string_tags_without_mutating_shared_dicts(ctx: ComponentContext, overwrite: bool) -> None:
    proc = make(ctx, fields={"env": "prod", "node": "{host}", "shard": 7, "canary": False}, overwrite=overwrite)
    shared = {"env": "dev", "route": "/x"}
    metrics = [Metric("a", "gauge", 1.0, shared), Metric("b", "counter", 2.0, shared)]
    out = proc.process(Batch(METRICS, metrics))
    assert out is not None
    for m in out.records:
        assert m.tags == {
            "env": "prod" if overwrite else "dev",
            "route": "/x",
            "node": "testhost",
            "shard": "7",
            "canary": "false",
        }
        assert m.tags is not shared
    assert shared == {"env": "dev", "route": "/x"}


def test_unknown_host_fact_fails_at_construction(ctx: ComponentContext) -> None:
    with pytest.raises(ValueError, match=r"unknown host fact\(s\) zone; known facts: host, region"):
        make(ctx, fields={"where": "{zone}"})


@pytest.mark.parametrize("value", ["{", "}", "{host.name}", "{host:>10}", "{0}", "{}"])
def test_bad_templates_are_config_errors(value: str) -> None:
    with pytest.raises(ValidationError, match="field 'x'"):
        AddFieldsConfig(type="add_fields", inputs=["src"], fields={"x": value})


def test_config_needs_fields() -> None:
    with pytest.raises(ValidationError):
        AddFieldsConfig(type="add_fields", inputs=["src"], fields={})
    with pytest.raises(ValidationError):
        AddFieldsConfig(type="add_fields", inputs=["src"], fields={"": "x"})
    with pytest.raises(ValidationError):
        AddFieldsConfig(type="add_fields", inputs=["src"], fields={"x": [1, 2]})


def test_value_types_survive_validation() -> None:
    config = AddFieldsConfig(type="add_fields", inputs=["s"], fields={"b": True, "i": 1, "f": 1.5, "s": "1"})
    assert config.fields == {"b": True, "i": 1, "f": 1.5, "s": "1"}
    assert [type(v) for v in config.fields.values()] == [bool, int, float, str]
