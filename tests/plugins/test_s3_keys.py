"""s3 object keys: partitions from the event time, names from the request origin, S3's key length."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector_plugins.common.key_escape import SAFE_CHARACTERS, escape_value
from collector_plugins.common.record_templates import RecordTemplate
from collector_plugins.outputs.s3.keys import KeyTooLongError, ObjectKeys, check_prefix
from collector_plugins.outputs.s3.output import DEFAULT_PREFIX

HOST = {"host": "node-1"}
T0 = 1764151200.0  # 2025-11-26T10:00:00Z


def rec(ts: Any, i: int = 0, **fields: Any) -> dict[str, Any]:
    return {"timestamp": ts, "message": f"m{i}", **fields}


def test_a_request_spanning_an_hour_boundary_becomes_one_group_per_hour() -> None:
    keys = ObjectKeys(DEFAULT_PREFIX, HOST, ".json.gz")
    records = [rec(T0 + 3590, 0), rec(T0 + 3601, 1), rec(T0 + 3599, 2), rec(T0 + 3700, 3)]
    groups = keys.partition(records)
    assert list(groups) == [
        "logs/year=2025/month=11/day=26/hour=10/host=node-1/",
        "logs/year=2025/month=11/day=26/hour=11/host=node-1/",
    ]
    assert [r["message"] for r in groups["logs/year=2025/month=11/day=26/hour=10/host=node-1/"]] == ["m0", "m2"]
    assert [r["message"] for r in groups["logs/year=2025/month=11/day=26/hour=11/host=node-1/"]] == ["m1", "m3"]


def test_one_hour_is_one_group_holding_every_record_in_order() -> None:
    keys = ObjectKeys(DEFAULT_PREFIX, HOST, ".json.gz")
    records = [rec(T0 + i, i) for i in range(1000)]
    (group,) = keys.partition(records).values()
    assert group == records


def test_records_without_a_usable_time_are_placed_at_the_time_of_writing() -> None:
    keys = ObjectKeys("d={%Y}-{%m}-{%d}/", HOST, ".json")
    now = RecordTemplate("d={%Y}-{%m}-{%d}/", HOST).render({})
    odd = [{"message": "no time"}, rec("yesterday", 2), rec(float("nan"), 3), rec(float("inf"), 4), rec(1e300, 5)]
    groups = keys.partition([rec(T0, 0), *odd])
    assert groups == {"d=2025-11-26/": [rec(T0, 0)], now: odd}


def test_record_fields_in_the_prefix_split_by_field() -> None:
    keys = ObjectKeys("k8s/{kubernetes.namespace}/{%Y}/", HOST, ".json")
    records = [
        rec(T0, 0, kubernetes={"namespace": "a"}),
        rec(T0, 1, kubernetes={"namespace": "b"}),
        rec(T0, 2),
    ]
    assert {k: [r["message"] for r in v] for k, v in keys.partition(records).items()} == {
        "k8s/a/2025/": ["m0"],
        "k8s/b/2025/": ["m1"],
        "k8s/unknown/2025/": ["m2"],
    }


def test_a_static_prefix_is_one_group() -> None:
    keys = ObjectKeys("archive/{host}/", HOST, ".json")
    assert list(keys.partition([rec(T0), rec(T0 + 86400 * 40)])) == ["archive/node-1/"]
    assert keys.partition([]) == {}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False), min_size=1, max_size=40))
def test_the_time_bucket_fast_path_groups_exactly_like_the_template(stamps: list[float]) -> None:
    for prefix in (DEFAULT_PREFIX, "y={%Y}/m={%m}/", "min={%M}/", "{%Y}{%m}{%d}{%H}{%M}{%S}/"):
        records = [rec(ts, i) for i, ts in enumerate(stamps)]
        assert ObjectKeys(prefix, HOST, "").partition(records) == RecordTemplate(prefix, HOST).group(records)


def test_the_name_is_the_origin_so_a_replay_writes_the_same_key() -> None:
    keys = ObjectKeys(DEFAULT_PREFIX, HOST, ".json.gz")
    prefix = "logs/year=2025/month=11/day=26/hour=10/host=node-1/"
    assert keys.key(prefix, "19ab3c4d5e6-1-0") == prefix + "19ab3c4d5e6-1-0.json.gz"
    assert keys.key(prefix, "19ab3c4d5e6-1-0") == keys.key(prefix, "19ab3c4d5e6-1-0")


def test_without_an_origin_every_name_is_new() -> None:
    keys = ObjectKeys("p/", HOST, ".json")
    names = {keys.key("p/", None) for _ in range(50)}
    assert len(names) == 50 and all(n.startswith("p/r") and n.endswith(".json") for n in names)


def test_keys_longer_than_s3_allows_are_refused() -> None:
    keys = ObjectKeys("{path}/", HOST, ".json.gz")
    ok_prefix = "a" * (1024 - len("-o.json.gz") - 1) + "/"
    assert len(keys.key(ok_prefix, "-o").encode()) == 1024
    with pytest.raises(KeyTooLongError, match="1025 bytes"):
        keys.key("a" + ok_prefix, "-o")
    with pytest.raises(KeyTooLongError):
        keys.key("é" * 510 + "/", "-o")  # 2 bytes each in UTF-8


# ----------------------------------------------------------------- hostile values in the prefix

SAFE_OR_ESCAPE = SAFE_CHARACTERS | {"%"}
HOSTILE = ["../../etc", "..", ".", "a/b", "x/year=1999", "\x00", "tab\there", "new\nline", "%2F", "", "é/ü", "~{}"]


def decode(segment: str) -> str:
    return unquote_to_bytes(segment).decode("utf-8", "surrogatepass")


def test_hostile_field_values_stay_inside_their_segment() -> None:
    keys = ObjectKeys("logs/app={app}/dt={%Y}-{%m}-{%d}/", HOST, ".json")
    records = [rec(T0, i, app=value) for i, value in enumerate(HOSTILE)]
    groups = keys.partition(records)
    assert list(groups) == [
        "logs/app=..%2F..%2Fetc/dt=2025-11-26/",
        "logs/app=%2E%2E/dt=2025-11-26/",
        "logs/app=%2E/dt=2025-11-26/",
        "logs/app=a%2Fb/dt=2025-11-26/",
        "logs/app=x%2Fyear%3D1999/dt=2025-11-26/",
        "logs/app=%00/dt=2025-11-26/",
        "logs/app=tab%09here/dt=2025-11-26/",
        "logs/app=new%0Aline/dt=2025-11-26/",
        "logs/app=%252F/dt=2025-11-26/",  # an already-escaped value is escaped again: it stays distinct
        "logs/app=unknown/dt=2025-11-26/",  # empty renders as missing, as before
        "logs/app=%C3%A9%2F%C3%BC/dt=2025-11-26/",
        "logs/app=%7E%7B%7D/dt=2025-11-26/",
    ]
    for prefix in groups:
        assert prefix.count("/") == 3


def test_host_facts_are_escaped_too() -> None:
    keys = ObjectKeys("task={task_arn}/", {**HOST, "task_arn": "arn:aws:ecs:us-east-1:1:task/c/abc"}, ".json")
    assert list(keys.partition([rec(T0)])) == ["task=arn%3Aaws%3Aecs%3Aus-east-1%3A1%3Atask%2Fc%2Fabc/"]


values = st.one_of(st.text(), st.sampled_from(HOSTILE), st.text(alphabet="./%\x00\t\n", max_size=6))


@settings(max_examples=500, deadline=None)
@given(values, values)
def test_any_value_keeps_the_segment_count_safe_characters_and_distinctness(a: str, b: str) -> None:
    template = "logs/{app}/x={b.c}-{app}/{%Y}/"
    keys = ObjectKeys(template, HOST, ".json")
    for value in (a, b):
        (prefix,) = keys.partition([rec(T0, app=value, b={"c": value})])
        key = keys.key(prefix, "19ab3c4d5e6-1-0") if len(prefix) < 900 else prefix
        segments = key.split("/")
        assert len(segments) == template.count("/") + 1
        assert all(segment not in ("", ".", "..") for segment in segments[:-1])
        assert segments[2].startswith("x=")  # the template's own text is where it was
        assert set(segments[1] + segments[2][2:] + segments[4]) <= SAFE_OR_ESCAPE  # the values: safe characters
        if value:
            assert decode(segments[1]) == value  # percent-decoding gives the value back: escaping is injective
    assert escape_value(a) != escape_value(b) or a == b
    assert decode(escape_value(a)) == a


def test_a_prefix_with_dot_or_empty_segments_is_refused() -> None:
    assert check_prefix("logs/{app}/") == "logs/{app}/"
    for bad in ("logs/../{app}/", "./{app}/", "logs//{app}/", "/logs/"):
        with pytest.raises(ValueError):
            check_prefix(bad)
