"""The `metrics_to_emf` processor: the EMF path of the metrics, documents CloudWatch extracts as they are."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.api import ComponentContext, HostFacts
from collector.events import LOGS, METRICS, Batch, Metric
from collector_plugins.common.metrics.distribution import Distribution, as_distribution
from collector_plugins.common.metrics.emf import MAX_VALUES_PER_METRIC, EmfChecker, to_metrics
from collector_plugins.processors.metrics_to_emf.processor import MetricsToEmf, MetricsToEmfConfig

NOW = time.time() // 60 * 60
T = NOW - 60


class Losses(dict[str, int]):
    def __call__(self, reason: str, events: int) -> None:
        self[reason] = self.get(reason, 0) + events


async def processor(tmp_path: Path, **options: Any) -> tuple[MetricsToEmf, Losses]:
    losses = Losses()
    ctx = ComponentContext("emf", logging.getLogger("test.metrics_to_emf"), tmp_path, HostFacts("h"), loss=losses)
    proc = MetricsToEmf(MetricsToEmfConfig.model_validate({"type": "metrics_to_emf", "inputs": ["m"], **options}), ctx)
    await proc.start()
    return proc, losses


def documents(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert all(r["_emf"] is True and isinstance(r["message"], str) for r in records)
    docs = [orjson.loads(r["message"]) for r in records]
    for record, doc in zip(records, docs, strict=True):
        assert record["timestamp"] == doc["_aws"]["Timestamp"] / 1000
        again = EmfChecker().check(copy.deepcopy(doc), 0)  # valid as it is: nothing to split, repair or drop
        assert again.emf and not again.changed and not again.losses
    return docs


async def test_every_type_in_one_document(tmp_path: Path) -> None:
    proc, losses = await processor(tmp_path, namespace="Shop")
    latency = {"values": [1.0, 2.0], "counts": [3.0, 1.0], "sum": 5.0, "count": 4.0, "min": 1.0, "max": 2.0}
    batch = Batch(
        METRICS,
        [
            Metric("requests", "counter", 10.0, {"route": "/a"}, T, "Count", 60.0),
            Metric("depth", "gauge", 3.0, {"route": "/a"}, T, None, 60.0),
            Metric("latency", "distribution", latency, {"route": "/a"}, T, "Milliseconds", 60.0),
            Metric("users", "set", ["a", "b"], {"route": "/a"}, T, None, 60.0),
        ],
    )
    out = proc.process(batch)
    assert out is not None and out.kind == LOGS
    (doc,) = documents(out.records)
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Shop" and directive["Dimensions"] == [["route"]]
    assert [m["Name"] for m in directive["Metrics"]] == ["requests", "depth", "latency", "users"]
    assert {"Name": "latency", "Unit": "Milliseconds"} in directive["Metrics"]
    assert (doc["route"], doc["requests"], doc["depth"], doc["users"]) == ("/a", 10.0, 3.0, 2.0)
    assert doc["latency"] == {
        "Values": [1.0, 2.0],
        "Counts": [3.0, 1.0],
        "Count": 4.0,
        "Sum": 5.0,
        "Min": 1.0,
        "Max": 2.0,
    }
    assert losses == {}


async def test_what_the_emf_input_reads_back_is_what_went_in(tmp_path: Path) -> None:
    proc, _ = await processor(tmp_path, namespace_from_tag="namespace")
    original = [
        Metric("lat", "distribution", [5.0, 5.0, 7.0], {"svc": "a", "namespace": "App"}, T, "Milliseconds"),
        Metric("hits", "counter", 3.0, {"svc": "b"}, T),
    ]
    out = proc.process(Batch(METRICS, original))
    assert out is not None
    back = {m.name: m for doc in documents(out.records) for m in to_metrics(doc, "namespace")}
    assert as_distribution(back["lat"].value).pairs() == [(5.0, 2.0), (7.0, 1.0)]
    assert back["lat"].tags == {"svc": "a", "namespace": "App"} and back["lat"].unit == "Milliseconds"
    assert back["hits"].tags == {"svc": "b", "namespace": "CWAgent"}
    assert back["hits"].timestamp == T


async def test_groups_and_splits(tmp_path: Path) -> None:
    proc, _ = await processor(tmp_path)
    many = [Metric(f"m{i}", "gauge", float(i), {"host": "a"}, T) for i in range(150)]
    other_time = [Metric("m0", "gauge", 1.0, {"host": "a"}, T + 60)]
    other_dims = [Metric("m0", "gauge", 1.0, {"host": "b"}, T)]
    wide = [Metric("lat", "distribution", [float(v) for v in range(250)], {"host": "a"}, T)]
    out = proc.process(Batch(METRICS, many + other_time + other_dims + wide))
    assert out is not None
    docs = documents(out.records)
    assert sorted(len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in docs) == [1, 1, 1, 1, 51, 100]
    lat = [d["lat"] for d in docs if "lat" in d]
    assert sum(part["Count"] for part in lat) == 250 and sum(part["Sum"] for part in lat) == sum(range(250))


async def test_same_name_twice_and_names_that_clash(tmp_path: Path) -> None:
    proc, losses = await processor(tmp_path)
    out = proc.process(
        Batch(
            METRICS,
            [
                Metric("x", "counter", 1.0, {"k": "v"}, T),
                Metric("x", "distribution", [2.0], {"k": "v"}, T),
                Metric("k", "gauge", 1.0, {"k": "v"}, T),  # named like its own dimension: not expressible
            ],
        )
    )
    assert out is not None
    docs = documents(out.records)
    distribution = {"Values": [2.0], "Counts": [1.0], "Count": 1.0, "Sum": 2.0, "Min": 2.0, "Max": 2.0}
    assert sorted(str(d["x"]) for d in docs) == sorted(["1.0", str(distribution)])
    assert losses == {"metric_named_like_a_dimension": 1}


async def test_options_and_invalid_records(tmp_path: Path) -> None:
    proc, losses = await processor(
        tmp_path, distribution="statistic_set", drop_dimensions=["request_id"], append_dimensions={"Env": "prod"}
    )
    out = proc.process(
        Batch(
            METRICS,
            [
                Metric("lat", "distribution", [1.0, 3.0], {"request_id": "r1", "route": "/a"}, T, None, 10.0),
                Metric("bad", "gauge", float("inf"), {}, T),
                Metric("wide", "gauge", 1.0, {f"d{i}": "v" for i in range(31)}, T),
                Metric("empty", "distribution", [], {}, T),
            ],
        )
    )
    assert out is not None
    (doc,) = documents(out.records)
    assert doc["lat"] == {"Count": 2.0, "Sum": 4.0, "Min": 1.0, "Max": 3.0}
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert directive["Dimensions"] == [["Env", "route"]] and "request_id" not in doc
    assert directive["Metrics"] == [{"Name": "lat", "StorageResolution": 1}]
    assert losses == {"invalid_value": 1, "too_many_dimensions": 1}
    assert proc.process(Batch(METRICS, [Metric("bad", "gauge", float("nan"), {}, T)])) is None


@pytest.mark.parametrize(
    "options",
    [
        {"namespace": "AWS/Logs"},
        {"append_dimensions": {"AutoScalingGroupName": "{aws:AutoScalingGroupName}"}},
        {"dimensions": ["a"], "drop_dimensions": ["b"]},
    ],
)
def test_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        MetricsToEmfConfig.model_validate({"type": "metrics_to_emf", "inputs": ["m"], **options})


async def test_a_bucketed_distribution_gives_exact_statistics_in_every_piece(tmp_path: Path) -> None:
    """500 distinct values, bucketed by the aggregator, become documents of at most 100 values each; CloudWatch
    adds the pieces up to the exact SampleCount, Sum, Minimum and Maximum whether it reads a piece's statistic
    set or its Values/Counts (each piece's set describes its own values)."""
    proc, _ = await processor(tmp_path)
    dist = Distribution()
    dist.add_values([float(v) for v in range(0, 1000, 2)])
    assert dist.bucketed
    out = proc.process(Batch(METRICS, [Metric("lat", "distribution", dist.to_value(), {}, T, "Milliseconds")]))
    assert out is not None
    pieces = [d["lat"] for d in documents(out.records)]
    assert len(pieces) > 1 and all(len(p["Values"]) <= MAX_VALUES_PER_METRIC for p in pieces)
    for p in pieces:
        assert p["Count"] == sum(p["Counts"])
        assert p["Sum"] == pytest.approx(sum(v * c for v, c in zip(p["Values"], p["Counts"], strict=True)), rel=1e-12)
        assert (p["Min"], p["Max"]) == (min(p["Values"]), max(p["Values"]))
    assert sum(p["Count"] for p in pieces) == 500
    assert sum(p["Sum"] for p in pieces) == pytest.approx(249500.0, rel=1e-12)
    assert (min(p["Min"] for p in pieces), max(p["Max"] for p in pieces)) == (0.0, 998.0)
