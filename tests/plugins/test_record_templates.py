"""Record templates: host facts, record fields (nested), date parts, escapes, grouping, errors."""

from __future__ import annotations

import calendar
import time

import pytest

from collector_plugins.common.record_templates import RecordTemplate, check_record_template, template_names

HOST = {"host": "node-1", "instance_id": "i-0abc"}
TS = calendar.timegm((2026, 11, 26, 7, 5, 9)) + 0.25  # 2026-11-26T07:05:09.25Z


def test_host_facts_only_is_static_and_rendered_once() -> None:
    template = RecordTemplate("/ec2/{host}/{instance_id}", HOST)
    assert template.static
    assert template.render({}) == "/ec2/node-1/i-0abc"
    records = [{"message": "a"}, {"message": "b"}]
    assert template.group(records) == {"/ec2/node-1/i-0abc": records}
    assert template.group([]) == {}


def test_record_fields_nested_and_dotted_keys() -> None:
    template = RecordTemplate("{k8s.namespace}/{container_name}", HOST)
    assert not template.static
    assert template.render({"k8s": {"namespace": "prod"}, "container_name": "web"}) == "prod/web"
    # A flat key with a dot wins over the nested path.
    assert template.render({"k8s.namespace": "flat", "k8s": {"namespace": "nested"}, "container_name": "x"}) == (
        "flat/x"
    )
    assert template.render({"container_name": b"bytes-name", "k8s": {"namespace": 7}}) == "7/bytes-name"


@pytest.mark.parametrize(
    "record",
    [{}, {"container_name": None}, {"container_name": ""}, {"k8s": "not-a-dict"}, {"k8s": {"other": 1}}],
)
def test_missing_fields_render_as_missing(record: dict) -> None:
    assert RecordTemplate("{k8s.namespace}-{container_name}", HOST, missing="none").render(record) == "none-none"


def test_date_parts_come_from_the_record_timestamp_in_utc() -> None:
    template = RecordTemplate("{host}/{%Y}/{%m}/{%d}/{%H}{%M}{%S}", HOST)
    assert template.render({"timestamp": TS}) == "node-1/2026/11/26/070509"
    # The minute cache must not leak into the next record.
    assert template.render({"timestamp": TS + 3600}) == "node-1/2026/11/26/080509"


def test_date_parts_without_a_timestamp_use_the_current_time() -> None:
    rendered = RecordTemplate("{%Y}", HOST).render({"message": "x"})
    assert rendered.isdigit() and int(rendered) >= 2026


def test_literal_braces() -> None:
    assert RecordTemplate("{{literal}}-{host}", HOST).render({}) == "{literal}-node-1"


def test_host_facts_take_precedence_over_record_fields() -> None:
    assert RecordTemplate("{host}", HOST).render({"host": "from-record"}) == "node-1"


def test_group_keeps_order_within_each_key() -> None:
    template = RecordTemplate("{app}", HOST)
    records = [{"app": "a", "n": 1}, {"app": "b", "n": 2}, {"app": "a", "n": 3}, {"n": 4}]
    groups = template.group(records)
    assert list(groups) == ["a", "b", "unknown"]
    assert [r["n"] for r in groups["a"]] == [1, 3]
    assert [r["n"] for r in groups["unknown"]] == [4]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("/app/{host", "never closed"),
        ("/app/host}", "single '}'"),
        ("{a b}", "invalid placeholder"),
        ("{x!r}", "invalid placeholder"),
        ("{x:>10}", "invalid placeholder"),
        ("{%Q}", "invalid placeholder"),
        ("{}", "invalid placeholder"),
        ("{a..b}", "invalid placeholder"),
    ],
)
def test_malformed_templates_raise_clear_errors(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"invalid template|invalid placeholder") as info:
        check_record_template(template)
    assert message in str(info.value)
    with pytest.raises(ValueError):
        RecordTemplate(template, HOST)


def test_template_names() -> None:
    assert template_names("/a/{host}/{k8s.pod}/{%Y}{{x}}") == ["host", "k8s.pod", "%Y"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 1e300, "yesterday", None])
def test_a_record_without_a_usable_time_is_filed_under_now(bad: object) -> None:
    template = RecordTemplate("{%Y}", {"host": "h"})
    assert template.render({"timestamp": bad}) == time.strftime("%Y", time.gmtime())
