"""EMF documents: what CloudWatch would silently ignore is split, repaired, or counted with its reason."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from collector_plugins.common.metrics.emf import (
    MAX_DIMENSIONS_PER_SET,
    MAX_METRICS_PER_DOCUMENT,
    MAX_VALUES_PER_METRIC,
    EmfChecker,
    to_metrics,
)

NOW_MS = 1_764_150_000_000


def document(metrics: dict[str, Any], dimensions: list[list[str]] | None = None, **root: Any) -> dict[str, Any]:
    return {
        "_aws": {
            "Timestamp": NOW_MS - 5000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "App",
                    "Dimensions": dimensions if dimensions is not None else [["Service"]],
                    "Metrics": [{"Name": name, "Unit": "Milliseconds"} for name in metrics],
                }
            ],
        },
        "Service": "checkout",
        **metrics,
        **root,
    }


def check(doc: dict[str, Any]) -> Any:
    return EmfChecker().check(doc, NOW_MS)


def assert_valid(doc: dict[str, Any]) -> None:
    """A checked document is left alone by a second check: nothing in it needs fixing."""
    again = check(copy.deepcopy(doc))
    assert again.emf and not again.changed and not again.losses and again.documents == [doc]
    definitions = [m for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
    assert len(definitions) <= MAX_METRICS_PER_DOCUMENT
    for definition in definitions:
        value = doc[definition["Name"]]
        assert not isinstance(value, list) or len(value) <= MAX_VALUES_PER_METRIC


def test_a_valid_document_passes_unchanged() -> None:
    doc = document({"Latency": 12.5, "Hits": [1, 2, 3]}, RequestId="abc")
    original = copy.deepcopy(doc)
    result = check(doc)
    assert result.emf and not result.changed and result.losses == {}
    assert result.documents == [original]


def test_more_than_100_metrics_are_split_into_documents_of_at_most_100() -> None:
    metrics = {f"m{i}": float(i) for i in range(250)}
    result = check(document(metrics, RequestId="r1"))
    assert result.emf and result.changed and result.losses == {}
    assert [len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in result.documents] == [100, 100, 50]
    seen: dict[str, Any] = {}
    for piece in result.documents:
        assert_valid(piece)
        assert piece["RequestId"] == "r1" and piece["Service"] == "checkout"  # other members in every piece
        assert piece["_aws"]["Timestamp"] == NOW_MS - 5000
        for definition in piece["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            assert definition["Name"] not in seen  # each metric's value in exactly one document
            seen[definition["Name"]] = piece[definition["Name"]]
        # No piece carries another piece's metric values.
        assert {k for k in piece if k.startswith("m")} == {
            m["Name"] for m in piece["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        }
    assert seen == metrics


def test_arrays_of_more_than_100_values_are_split() -> None:
    values = list(range(250))
    result = check(document({"Latency": values, "Count": 1}))
    assert len(result.documents) == 3
    rebuilt: list[int] = []
    for piece in result.documents:
        assert_valid(piece)
        rebuilt.extend(piece["Latency"])
    assert rebuilt == values
    assert [piece.get("Count") for piece in result.documents] == [1, None, None]  # the scalar is sent once


def test_several_directives_split_together() -> None:
    doc = document({f"a{i}": 1 for i in range(80)})
    doc["_aws"]["CloudWatchMetrics"].append(
        {"Namespace": "Other", "Dimensions": [[]], "Metrics": [{"Name": f"b{i}"} for i in range(80)]}
    )
    doc.update({f"b{i}": 2 for i in range(80)})
    result = check(doc)
    assert len(result.documents) == 2
    for piece in result.documents:
        assert_valid(piece)
    namespaces = [[d["Namespace"] for d in p["_aws"]["CloudWatchMetrics"]] for p in result.documents]
    assert namespaces == [["App", "Other"], ["Other"]]


def test_too_many_dimensions_drops_that_set_and_counts_its_metrics() -> None:
    keys = [f"d{i}" for i in range(MAX_DIMENSIONS_PER_SET + 1)]
    doc = document({"Latency": 1, "Hits": 2}, dimensions=[keys, ["Service"]], **{k: "v" for k in keys})
    result = check(doc)
    assert result.emf and result.changed
    assert result.losses == {"emf_too_many_dimensions": 2}
    (piece,) = result.documents
    assert piece["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service"]]
    assert_valid(piece)
    # Exactly 30 is fine.
    ok = document({"Latency": 1}, dimensions=[keys[:30]], **{k: "v" for k in keys})
    assert check(ok).losses == {}


def test_a_directive_left_without_dimension_sets_goes_on_as_a_plain_line() -> None:
    keys = [f"d{i}" for i in range(31)]
    result = check(document({"Latency": 1}, dimensions=[keys], **{k: "v" for k in keys}))
    assert not result.emf and result.losses == {"emf_too_many_dimensions": 1}
    assert len(result.documents) == 1  # the log line itself is kept


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "emf_metric_without_value"),  # missing
        ("12", "emf_metric_without_value"),
        ([], "emf_metric_without_value"),
        ([1, "x"], "emf_metric_without_value"),
        (True, "emf_metric_without_value"),
        ({"v": 1}, "emf_metric_without_value"),
    ],
)
def test_a_metric_without_a_usable_value_is_dropped_and_counted(value: Any, reason: str) -> None:
    doc = document({"Good": 1.0})
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].append({"Name": "Bad"})
    if value is not None:
        doc["Bad"] = value
    result = check(doc)
    assert result.losses == {reason: 1}
    (piece,) = result.documents
    assert [m["Name"] for m in piece["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == ["Good"]
    assert_valid(piece)


@pytest.mark.parametrize(
    "value",
    [None, 5, "", " ", "x" * 1025],
)
def test_invalid_dimension_values_drop_the_set(value: Any) -> None:
    doc = document({"Latency": 1}, dimensions=[["Service", "Host"], ["Service"]])
    if value is not None:
        doc["Host"] = value
    result = check(doc)
    assert result.losses == {"emf_invalid_dimension": 1}
    assert result.documents[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service"]]


@pytest.mark.parametrize(
    "directive",
    [
        {"Dimensions": [[]], "Metrics": [{"Name": "X"}]},
        {"Namespace": "", "Dimensions": [[]], "Metrics": [{"Name": "X"}]},
        {"Namespace": "AWS/EC2", "Dimensions": [[]], "Metrics": [{"Name": "X"}]},
        {"Namespace": ":x", "Dimensions": [[]], "Metrics": [{"Name": "X"}]},
        {"Namespace": "A", "Metrics": [{"Name": "X"}]},
        {"Namespace": "A", "Dimensions": ["Service"], "Metrics": [{"Name": "X"}]},
        {"Namespace": "A", "Dimensions": [[]], "Metrics": {"Name": "X"}},
    ],
)
def test_invalid_directives_are_counted(directive: dict[str, Any]) -> None:
    doc = {"_aws": {"Timestamp": NOW_MS, "CloudWatchMetrics": [directive]}, "X": 1}
    result = check(doc)
    assert not result.emf
    assert result.losses == {"emf_invalid_directive": 1}


def test_safe_repairs() -> None:
    doc = document({"Latency": 1.5, "Hits": 3})
    del doc["_aws"]["Timestamp"]
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] = [
        {"Name": "Latency", "Unit": "Millis"},  # not a CloudWatch unit
        {"Name": "Hits", "Unit": "Count", "StorageResolution": 5},  # only 1 or 60
    ]
    result = check(doc)
    assert result.emf and result.changed and result.repairs == 3 and result.losses == {}
    (piece,) = result.documents
    assert piece["_aws"]["Timestamp"] == NOW_MS
    assert piece["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [{"Name": "Latency"}, {"Name": "Hits", "Unit": "Count"}]
    assert_valid(piece)
    floaty = document({"Latency": 1})
    floaty["_aws"]["Timestamp"] = 1.7e12 + 0.5
    assert check(floaty).documents[0]["_aws"]["Timestamp"] == 1_700_000_000_000


def test_documents_without_metadata_are_plain_lines() -> None:
    result = check({"message": "hello", "level": "info"})
    assert not result.emf and not result.losses
    result = check({"_aws": {"Timestamp": 1}, "x": 1})
    assert not result.emf and result.losses == {"emf_invalid_directive": 1}


def test_to_metrics() -> None:
    doc = document({"Latency": [10.0, 20.0], "Hits": 3}, dimensions=[["Service"], []])
    points = to_metrics(doc, "namespace")
    assert {(m.name, tuple(sorted(m.tags.items())), tuple(m.value)) for m in points} == {
        ("Latency", (("Service", "checkout"), ("namespace", "App")), (10.0, 20.0)),
        ("Hits", (("Service", "checkout"), ("namespace", "App")), (3.0,)),
        ("Latency", (("namespace", "App"),), (10.0, 20.0)),
        ("Hits", (("namespace", "App"),), (3.0,)),
    }
    assert all(m.type == "distribution" and m.timestamp == (NOW_MS - 5000) / 1000 for m in points)
    assert points[0].unit == "Milliseconds"
    assert {tuple(m.tags) for m in to_metrics(doc, None)} == {("Service",), ()}


def test_dimension_keys_that_are_not_strings() -> None:
    result = check(document({"Latency": 1}, dimensions=[[1], [["Service"]], ["Service"]]))  # type: ignore[list-item]
    assert result.losses == {"emf_invalid_dimension": 2}
    assert result.documents[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service"]]


def test_the_structure_is_checked_once_but_values_per_document() -> None:
    checker = EmfChecker()
    good = document({"Latency": 1.0})
    bad = document({"Latency": 1.0})
    del bad["Latency"]  # same metadata block, the value missing in this one
    assert checker.check(good, NOW_MS).losses == {}
    assert checker.check(bad, NOW_MS).losses == {"emf_metric_without_value": 1}
    assert checker.check(document({"Latency": 2.0}), NOW_MS).losses == {}
    assert len(checker._blocks) == 1


def test_statistic_set_values_as_the_cloudwatch_agent_writes_them() -> None:
    stats = {"Count": 4, "Sum": 10.0, "Min": 1.0, "Max": 4.0}
    histogram = {"Values": [1.0, 2.0, 4.0], "Counts": [1, 2, 1], "Count": 4, "Sum": 9.0, "Min": 1.0, "Max": 4.0}
    result = check(document({"Stats": stats, "Histogram": histogram}))
    assert result.emf and not result.changed and result.losses == {}
    bad = {"Count": 0, "Sum": 0, "Min": 0, "Max": 0}
    assert check(document({"Bad": bad})).losses == {"emf_metric_without_value": 1}
    uneven = {"Values": [1.0], "Counts": [1, 2], "Count": 3, "Sum": 5.0, "Min": 1.0, "Max": 2.0}
    assert check(document({"Uneven": uneven})).losses == {"emf_metric_without_value": 1}
    points = {m.name: m for m in to_metrics(result.documents[0], None)}
    assert points["Stats"].value == {"count": 4, "sum": 10.0, "min": 1.0, "max": 4.0}
    assert points["Histogram"].value["values"] == [1.0, 2.0, 4.0]


def test_a_histogram_with_more_than_100_values_is_split_with_its_statistics_intact() -> None:
    values = [float(v) for v in range(1, 251)]
    counts = [float(v % 3 + 1) for v in range(250)]
    total = sum(v * c for v, c in zip(values, counts, strict=True))
    histogram = {"Values": values, "Counts": counts, "Count": sum(counts), "Sum": total, "Min": 0.5, "Max": 260.0}
    result = check(document({"Latency": histogram}))
    assert len(result.documents) == 3
    parts = [piece["Latency"] for piece in result.documents]
    for piece in result.documents:
        assert_valid(piece)
    assert [v for p in parts for v in p["Values"]] == values
    assert sum(p["Count"] for p in parts) == sum(counts)
    assert sum(p["Sum"] for p in parts) == pytest.approx(total)
    assert min(p["Min"] for p in parts) == 0.5 and max(p["Max"] for p in parts) == 260.0
