"""OTLP span records → X-Ray segment documents (collector_plugins/common/otlp/xray_segments.py), block by block."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector_plugins.common.otlp.xray_segments import (
    SegmentMapper,
    SegmentOptions,
    SpanRejected,
    fix_annotation_key,
    fix_segment_name,
)
from tests.plugins.otlp_spans import KINDS, exception_event, span_record

NOW = time.time()
PARENT = "53995c3f42cd8ad8"


@pytest.fixture(autouse=True)
def _clock_now() -> None:
    """`NOW` is read when each test starts: span_record() stamps trace ids with the clock at call time, and a
    module-level value taken at collection would be minutes old by the time a long suite reaches these tests."""
    global NOW
    NOW = time.time()


def convert(span: dict[str, Any], **options: Any) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(SegmentMapper(SegmentOptions(**options)).convert(span, now=NOW))
    return result


def rejected(span: Any, **options: Any) -> str:
    with pytest.raises(SpanRejected) as info:
        SegmentMapper(SegmentOptions(**options)).convert(span, now=NOW)
    return str(info.value)


# --- ids, times, segment or subsegment ---------------------------------------------------------------------------


def test_trace_id_is_the_xray_form_of_the_w3c_id() -> None:
    span = span_record(trace_id=f"{int(NOW) - 60:08x}5c0ffee0000000000000abcd")
    doc = convert(span)
    assert doc["trace_id"] == f"1-{int(NOW) - 60:08x}-5c0ffee0000000000000abcd"
    assert doc["id"] == span["span_id"]
    assert doc["start_time"] == span["start_time_unix_nano"] / 1e9
    assert doc["end_time"] == span["end_time_unix_nano"] / 1e9
    assert "parent_id" not in doc and "type" not in doc


@pytest.mark.parametrize("offset", [-29 * 24 * 3600, 301, -(10**9)])
def test_a_trace_id_not_starting_with_a_recent_time_is_rejected_unless_told(offset: int) -> None:
    epoch = max(0, int(NOW) + offset)
    span = span_record(trace_id=f"{epoch:08x}{'ab' * 12}")
    assert rejected(span).startswith("trace_id_not_xray:")
    assert convert(span, skip_timestamp_validation=True)["trace_id"] == f"1-{epoch:08x}-{'ab' * 12}"


def test_trace_id_times_at_the_edges_of_the_window_are_accepted() -> None:
    for epoch in (int(NOW) - 28 * 24 * 3600 + 1, int(NOW) + 299):
        assert convert(span_record(trace_id=f"{epoch:08x}{'cd' * 12}"))["trace_id"].startswith(f"1-{epoch:08x}-")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("trace_id", "0" * 32, "invalid_trace_id"),
        ("trace_id", "ABCDEF" + "0" * 26, "invalid_trace_id"),
        ("trace_id", "abc", "invalid_trace_id"),
        ("trace_id", None, "invalid_trace_id"),
        ("span_id", "0" * 16, "invalid_span_id"),
        ("span_id", "xyz", "invalid_span_id"),
        ("parent_span_id", "123", "invalid_parent_span_id"),
        ("end_time_unix_nano", 5, "invalid_time"),
    ],
)
def test_invalid_spans_are_rejected_with_a_reason(field: str, value: Any, code: str) -> None:
    span = span_record()
    span[field] = value
    assert rejected(span).startswith(code + ":")


def test_not_a_dict_is_rejected() -> None:
    assert rejected(["a span"]).startswith("not_a_span:")


def test_times_fall_back_to_float_seconds_without_nanoseconds() -> None:
    span = span_record()
    del span["start_time_unix_nano"], span["end_time_unix_nano"]
    doc = convert(span)
    assert (doc["start_time"], doc["end_time"]) == (span["start_time"], span["end_time"])


def test_server_root_span_is_a_segment_named_after_the_service() -> None:
    resource = {
        "service.name": "shop",
        "service.version": "1.4.2",
        "cloud.provider": "aws",
        "cloud.platform": "aws_ecs",
        "aws.ecs.launchtype": "fargate",
        "aws.ecs.task.arn": "arn:aws:ecs:eu-west-1:1:task/x",
    }
    doc = convert(span_record(kind="server", parent=PARENT, resource=resource))
    assert doc["name"] == "shop" and "type" not in doc and doc["parent_id"] == PARENT
    assert doc["origin"] == "AWS::ECS::Fargate"
    assert doc["service"] == {"version": "1.4.2"}
    assert doc["aws"]["ecs"] == {"task_arn": "arn:aws:ecs:eu-west-1:1:task/x", "launch_type": "fargate"}
    assert doc["metadata"]["default"]["otel.resource.service.name"] == "shop"


@pytest.mark.parametrize(
    ("platform", "origin"),
    [
        ("aws_ec2", "AWS::EC2::Instance"),
        ("aws_eks", "AWS::EKS::Container"),
        ("aws_elastic_beanstalk", "AWS::ElasticBeanstalk::Environment"),
        ("aws_ecs", "AWS::ECS::Container"),
        ("aws_app_runner", "AWS::AppRunner::Service"),
        ("gcp_compute_engine", None),
    ],
)
def test_origin_comes_from_the_cloud_platform(platform: str, origin: str | None) -> None:
    assert convert(span_record(resource={"cloud.platform": platform})).get("origin") == origin


def test_another_cloud_gives_no_origin_and_no_aws_block() -> None:
    doc = convert(span_record(resource={"cloud.provider": "gcp", "cloud.platform": "aws_ec2", "host.id": "i-1"}))
    assert "origin" not in doc and "aws" not in doc


def test_client_child_is_a_remote_subsegment_named_after_the_peer() -> None:
    doc = convert(span_record(kind="client", parent=PARENT, name="GET", attributes={"peer.service": "payments"}))
    assert doc["type"] == "subsegment" and doc["parent_id"] == PARENT
    assert doc["namespace"] == "remote" and doc["name"] == "payments"
    assert "origin" not in doc and "service" not in doc
    # Resource attributes are kept on segments only; the span's attributes stay as metadata.
    assert doc["metadata"] == {"default": {"peer.service": "payments"}}


def test_internal_child_is_a_plain_subsegment_with_the_span_name() -> None:
    doc = convert(span_record(kind="internal", parent=PARENT, name="load-cart"))
    assert doc["type"] == "subsegment" and doc["name"] == "load-cart" and "namespace" not in doc


@pytest.mark.parametrize("kind", ["consumer", "server"])
def test_consumer_and_server_children_are_segments(kind: str) -> None:
    doc = convert(span_record(kind=kind, parent=PARENT, resource={"service.name": "worker"}))
    assert "type" not in doc and doc["parent_id"] == PARENT


def test_root_span_of_any_kind_is_a_segment() -> None:
    for kind in KINDS:
        assert "type" not in convert(span_record(kind=kind))


def test_segment_names_keep_only_characters_xray_allows() -> None:
    assert fix_segment_name("GET /cart?id=<1>;drop") == "GET /cartid=1drop"
    assert fix_segment_name("x" * 300) == "x" * 200
    assert fix_segment_name("!!!") == "span"
    assert fix_segment_name("café-ü@host:80") == "café-ü@host:80"
    assert convert(span_record(kind="internal", parent=PARENT, name="<>"))["name"] == "span"


# --- http --------------------------------------------------------------------------------------------------------


def test_http_block_from_the_old_conventions() -> None:
    attributes = {
        "http.method": "POST",
        "http.url": "https://shop.example/cart/1",
        "http.status_code": 201,
        "http.user_agent": "curl/8",
        "http.client_ip": "10.0.0.7",
        "http.response_content_length": 512,
        "http.route": "/cart/:id",
    }
    doc = convert(span_record(attributes=attributes))
    assert doc["http"] == {
        "request": {
            "method": "POST",
            "url": "https://shop.example/cart/1",
            "user_agent": "curl/8",
            "client_ip": "10.0.0.7",
            "x_forwarded_for": True,
        },
        "response": {"status": 201, "content_length": 512},
    }
    assert doc["metadata"]["default"]["http.route"] == "/cart/:id"  # not an X-Ray field: kept as metadata
    assert "http.method" not in doc["metadata"]["default"]


def test_http_block_from_the_current_conventions_server_url_assembled() -> None:
    attributes = {
        "http.request.method": "GET",
        "http.response.status_code": 200,
        "url.scheme": "https",
        "server.address": "shop.example",
        "server.port": 8443,
        "url.path": "/cart",
        "url.query": "id=1",
        "client.address": "192.0.2.4",
        "user_agent.original": "Mozilla/5.0",
    }
    request = convert(span_record(attributes=attributes))["http"]["request"]
    assert request["url"] == "https://shop.example:8443/cart?id=1"
    assert request["method"] == "GET" and request["client_ip"] == "192.0.2.4"
    assert request["user_agent"] == "Mozilla/5.0"


def test_http_client_url_leaves_out_default_ports() -> None:
    attributes = {
        "http.request.method": "GET",
        "url.scheme": "https",
        "server.address": "api.example",
        "server.port": 443,
    }
    doc = convert(span_record(kind="client", parent=PARENT, attributes=attributes))
    assert doc["http"]["request"]["url"] == "https://api.example/"
    full = {"http.request.method": "GET", "url.full": "http://api.example:8080/x?y=1"}
    assert convert(span_record(kind="client", parent=PARENT, attributes=full))["http"]["request"]["url"] == (
        "http://api.example:8080/x?y=1"
    )


def test_span_without_http_attributes_has_no_http_block() -> None:
    assert "http" not in convert(span_record(attributes={"order": 1}))


# --- errors, faults, throttles, causes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status_code", "span_status", "expected"),
    [
        (200, 0, (False, False, False)),
        (404, 0, (True, False, False)),
        (429, 0, (True, False, True)),
        (503, 0, (False, True, False)),
        (200, 2, (False, True, False)),  # no 4xx/5xx: status ERROR decides (fault)
        (None, 2, (False, True, False)),
        (None, 1, (False, False, False)),
    ],
)
def test_error_fault_throttle_flags(status_code: int | None, span_status: int, expected: tuple[bool, ...]) -> None:
    attributes = {"http.response.status_code": status_code} if status_code is not None else {}
    doc = convert(span_record(attributes=attributes, status=(span_status, "")))
    flags = (doc.get("error", False), doc.get("fault", False), doc.get("throttle", False))
    assert flags == expected


def test_status_error_without_exceptions_has_a_cause_with_the_status_message() -> None:
    doc = convert(span_record(status=(2, "upstream timed out")))
    (exception,) = doc["cause"]["exceptions"]
    assert exception["message"] == "upstream timed out" and re.fullmatch(r"[0-9a-f]{16}", exception["id"])
    doc = convert(span_record(status=(2, ""), attributes={"http.status_text": "Bad Gateway", "other": 1}))
    assert doc["cause"]["exceptions"][0]["message"] == "Bad Gateway"
    assert "http.status_text" not in doc["metadata"]["default"]
    assert "cause" not in convert(span_record(status=(1, "ok")))


PYTHON_TRACE = """Traceback (most recent call last):
  File "/app/db.py", line 10, in connect
    raise OSError("refused")
OSError: refused

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/app/shop.py", line 42, in checkout
    load()
  File "/app/cart.py", line 7, in load
    raise ValueError("cart gone")
ValueError: cart gone"""

JAVA_TRACE = """java.lang.IllegalStateException: cart gone
\tat shop.Cart.load(Cart.java:7)
\tat shop.Checkout.run(Checkout.java:42)
Caused by: java.io.IOException: refused
\tat shop.Db.connect(Db.java:10)
\t... 2 more"""


def test_python_exception_events_become_exceptions_with_stacks_and_causes() -> None:
    event = exception_event("ValueError", "cart gone", PYTHON_TRACE)
    doc = convert(span_record(events=[event], resource={"telemetry.sdk.language": "python"}))
    first, cause = doc["cause"]["exceptions"]
    assert (first["type"], first["message"], first["remote"]) == ("ValueError", "cart gone", False)
    assert first["stack"] == [
        {"path": "/app/cart.py", "line": 7, "label": "load"},
        {"path": "/app/shop.py", "line": 42, "label": "checkout"},
    ]
    assert first["cause"] == cause["id"]
    assert (cause["type"], cause["message"]) == ("OSError", "refused")
    assert cause["stack"] == [{"path": "/app/db.py", "line": 10, "label": "connect"}]


def test_java_exception_events_and_client_spans_are_remote() -> None:
    event = exception_event("java.lang.IllegalStateException", "cart gone", JAVA_TRACE)
    doc = convert(
        span_record(kind="client", parent=PARENT, events=[event], resource={"telemetry.sdk.language": "java"})
    )
    first, cause = doc["cause"]["exceptions"]
    assert first["remote"] is True
    assert first["stack"] == [
        {"path": "Cart.java", "line": 7, "label": "shop.Cart.load"},
        {"path": "Checkout.java", "line": 42, "label": "shop.Checkout.run"},
    ]
    assert (cause["type"], cause["message"], first["cause"]) == ("java.io.IOException", "refused", cause["id"])


def test_stack_of_an_unknown_language_is_left_out_and_other_events_ignored() -> None:
    events = [{"name": "cache miss", "attributes": {}}, exception_event("Err", "boom", "at somewhere")]
    (exception,) = convert(span_record(events=events, resource={"telemetry.sdk.language": "rust"}))["cause"][
        "exceptions"
    ]
    assert exception["type"] == "Err" and "stack" not in exception


# --- aws, sql ----------------------------------------------------------------------------------------------------


def test_aws_sdk_span_gets_the_aws_namespace_and_block() -> None:
    attributes = {
        "rpc.system": "aws-api",
        "rpc.service": "DynamoDB",
        "rpc.method": "BatchGetItem",
        "aws.region": "eu-west-1",
        "aws.request_id": "REQ123",
        "aws.dynamodb.table_names": ["carts", "orders"],
    }
    resource = {"service.name": "shop", "telemetry.sdk.name": "opentelemetry", "telemetry.sdk.language": "python"}
    doc = convert(span_record(kind="client", parent=PARENT, name="DynamoDB.BatchGetItem", attributes=attributes,
                              resource=resource))  # fmt: skip
    assert doc["name"] == "DynamoDB" and doc["namespace"] == "aws"
    assert doc["aws"]["operation"] == "BatchGetItem"
    assert doc["aws"]["region"] == "eu-west-1" and doc["aws"]["request_id"] == "REQ123"
    assert doc["aws"]["table_names"] == ["carts", "orders"] and "table_name" not in doc["aws"]
    assert doc["aws"]["xray"] == {"sdk": "opentelemetry for python", "auto_instrumentation": False}


def test_aws_remote_service_names_the_subsegment_without_the_sdk_prefix() -> None:
    attributes = {
        "rpc.system": "aws-api",
        "aws.remote.service": "AWS::SQS",
        "messaging.url": "https://sqs.eu-west-1.amazonaws.com/1/q",
        "aws.dynamodb.table_names": ["carts"],
    }
    doc = convert(span_record(kind="producer", parent=PARENT, attributes=attributes))
    assert doc["name"] == "SQS" and doc["namespace"] == "aws"
    assert doc["aws"]["queue_url"] == "https://sqs.eu-west-1.amazonaws.com/1/q"
    assert doc["aws"]["table_name"] == "carts"


def test_resource_facts_fill_ec2_eks_and_log_groups() -> None:
    resource = {
        "cloud.platform": "aws_eks",
        "host.id": "i-0abc",
        "host.type": "m7g.large",
        "cloud.availability_zone": "eu-west-1a",
        "k8s.cluster.name": "prod",
        "k8s.pod.name": "shop-7f9",
        "aws.log.group.arns": ["arn:aws:logs:eu-west-1:123456789012:log-group:/shop/app:*"],
    }
    aws = convert(span_record(resource=resource))["aws"]
    assert aws["ec2"] == {"instance_id": "i-0abc", "availability_zone": "eu-west-1a", "instance_size": "m7g.large"}
    assert aws["eks"] == {"cluster_name": "prod", "pod": "shop-7f9"}
    assert aws["cloudwatch_logs"] == [
        {"arn": "arn:aws:logs:eu-west-1:123456789012:log-group:/shop/app:*", "log_group": "/shop/app"}
    ]
    names = convert(span_record(resource={"aws.log.group.names": "/a&/b"}))["aws"]["cloudwatch_logs"]
    assert names == [{"log_group": "/a"}, {"log_group": "/b"}]


def test_sql_block_and_database_name() -> None:
    attributes = {
        "db.system": "postgresql",
        "db.name": "orders",
        "db.statement": "SELECT * FROM orders WHERE id = ?",
        "db.user": "shop",
        "db.connection_string": "jdbc:postgresql://db.example:5432",
    }
    doc = convert(span_record(kind="client", parent=PARENT, name="SELECT orders", attributes=attributes))
    assert doc["name"] == "orders@db.example"
    assert doc["sql"] == {
        "url": "SELECT orders",
        "connection_string": "jdbc:postgresql://db.example:5432/orders",
        "database_type": "postgresql",
        "user": "shop",
        "sanitized_query": "SELECT * FROM orders WHERE id = ?",
    }
    assert "metadata" not in doc


def test_a_non_sql_database_has_no_sql_block_and_keeps_its_attributes() -> None:
    attributes = {"db.system": "redis", "db.statement": "GET cart:1"}
    doc = convert(span_record(kind="client", parent=PARENT, attributes=attributes))
    assert "sql" not in doc and doc["metadata"]["default"] == attributes


# --- annotations, metadata, user, links -------------------------------------------------------------------------


def test_indexed_attributes_become_annotations_with_safe_keys_the_rest_metadata() -> None:
    attributes = {"order.id": "o-17", "tenant": "acme", "retries": 2, "tags": ["a", "b"], "enduser.id": "u-9"}
    doc = convert(span_record(attributes=attributes), indexed_attributes=frozenset({"order.id", "tags", "missing"}))
    assert doc["annotations"] == {"order_id": "o-17"}  # a list is no annotation value
    assert doc["metadata"]["default"]["tenant"] == "acme" and doc["metadata"]["default"]["retries"] == 2
    assert "tags" not in doc["metadata"]["default"] and "order.id" not in doc["metadata"]["default"]
    assert doc["user"] == "u-9" and "enduser.id" not in doc["metadata"]["default"]


def test_index_all_attributes_and_the_span_s_own_annotation_list() -> None:
    attributes = {"a.b": 1.5, "ok": True, "blob": {"x": 1}, "aws.xray.annotations": ["k"], "k": "v"}
    doc = convert(span_record(attributes=attributes, resource={"service.name": "shop"}), index_all_attributes=True)
    assert doc["annotations"] == {"a_b": 1.5, "ok": True, "k": "v", "otel_resource_service_name": "shop"}
    assert "metadata" not in doc
    only_listed = convert(span_record(attributes=attributes, resource={}))
    assert only_listed["annotations"] == {"k": "v"}
    assert "aws.xray.annotations" not in only_listed["metadata"]["default"]


def test_resource_attribute_can_be_indexed_by_its_prefixed_name() -> None:
    resource = {"service.name": "shop", "deployment.environment": "prod"}
    doc = convert(
        span_record(resource=resource), indexed_attributes=frozenset({"otel.resource.deployment.environment"})
    )
    assert doc["annotations"] == {"otel_resource_deployment_environment": "prod"}


def test_metadata_namespaces_from_json_attributes_and_bytes_as_base64() -> None:
    attributes = {
        "aws.xray.metadata.shop": '{"cart": {"items": 3}}',
        "aws.xray.metadata.default": '{"merged": true}',
        "aws.xray.metadata.bad": "not json",
        "payload": b"\x00\xff",
    }
    metadata = convert(span_record(attributes=attributes, resource={}))["metadata"]
    assert metadata["shop"] == {"cart": {"items": 3}}
    assert metadata["default"] == {
        "merged": True,
        "aws.xray.metadata.bad": "not json",
        "payload": base64.b64encode(b"\x00\xff").decode(),
    }


def test_annotation_keys_are_alphanumeric_and_underscore() -> None:
    assert fix_annotation_key("http.route/v1 x-y") == "http_route_v1_x_y"


def test_links_keep_readable_ids_only() -> None:
    other = f"{int(NOW):08x}" + "e" * 24
    links = [
        {"trace_id": other, "span_id": PARENT, "trace_state": "", "attributes": {"why": "batch"}, "flags": 1},
        {"trace_id": "0" * 32, "span_id": PARENT, "trace_state": "", "attributes": {}, "flags": 0},
    ]
    doc = convert(span_record(links=links))
    assert doc["links"] == [{"trace_id": f"1-{other[:8]}-{other[8:]}", "id": PARENT, "attributes": {"why": "batch"}}]


# --- any record per contract: a document or a reason, never an exception ------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.binary(max_size=8))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
known_keys = st.sampled_from(
    [
        "http.method", "http.request.method", "http.status_code", "http.response.status_code", "url.full",
        "server.port", "db.system", "db.name", "rpc.system", "rpc.method", "aws.dynamodb.table_names",
        "aws.remote.service", "enduser.id", "aws.xray.annotations", "aws.xray.metadata.x", "peer.service",
        "http.status_text", "net.peer.port", "messaging.url", "db.connection_string", "cloud.provider",
        "cloud.platform", "aws.log.group.names", "telemetry.sdk.language", "service.version", "service.instance.id",
    ]
)  # fmt: skip
attribute_maps = st.dictionaries(st.one_of(known_keys, st.text(max_size=10)), values, max_size=6)
hex_ids = st.one_of(st.text("0123456789abcdef", min_size=16, max_size=16), st.text(max_size=17), st.none())
events = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["exception", "other"]),
            "time_unix_nano": st.integers(min_value=0),
            "attributes": st.one_of(
                attribute_maps,
                st.fixed_dictionaries(
                    {"exception.type": values, "exception.message": values, "exception.stacktrace": st.text()}
                ),
            ),
        }
    ),
    max_size=3,
)


@st.composite
def span_records(draw: st.DrawFn) -> dict[str, Any]:
    span = span_record(
        kind=draw(st.sampled_from([*KINDS, "bogus"])),
        parent=draw(st.sampled_from(["", PARENT])),
        name=draw(st.text(max_size=30)),
        attributes=draw(attribute_maps),
        resource=draw(attribute_maps),
        events=draw(events),
        status=(draw(st.integers(-1, 3)), draw(st.text(max_size=5))),
        start=NOW - draw(st.floats(0, 3600)),
    )
    if draw(st.booleans()):
        span["span_id"] = draw(hex_ids)
    if draw(st.booleans()):
        span["trace_id"] = draw(st.one_of(hex_ids, st.text("0123456789abcdef", min_size=32, max_size=32)))
    if draw(st.booleans()):
        span["links"] = draw(st.lists(st.dictionaries(st.sampled_from(["trace_id", "span_id", "attributes"]), values)))
    if draw(st.booleans()):
        span["status"] = draw(values)
    if draw(st.booleans()):
        span[draw(st.sampled_from(sorted(span)))] = draw(values)
    return span


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(span_records())
def test_any_span_record_converts_or_is_rejected_with_a_reason(span: dict[str, Any]) -> None:
    mapper = SegmentMapper(SegmentOptions(indexed_attributes=frozenset({"http.method", "order"})))
    try:
        document = mapper.convert(span, now=NOW)
    except SpanRejected as exc:
        assert re.match(r"[a-z_]+: ", str(exc))
        return
    doc = orjson.loads(document)
    assert re.fullmatch(r"1-[0-9a-f]{8}-[0-9a-f]{24}", doc["trace_id"])
    assert re.fullmatch(r"[0-9a-f]{16}", doc["id"])
    assert isinstance(doc["name"], str) and 0 < len(doc["name"]) <= 200
    assert doc["end_time"] >= doc["start_time"] > 0
    for key, value in doc.get("annotations", {}).items():
        assert re.fullmatch(r"[A-Za-z0-9_]+", key) and isinstance(value, str | int | float | bool)


def test_end_one_nanosecond_before_start_is_rejected_though_the_float_seconds_are_equal() -> None:
    span = span_record(start=NOW)
    span["end_time_unix_nano"] = span["start_time_unix_nano"] - 1
    assert rejected(span) == "invalid_time: end before start"


def test_spans_sharing_a_resource_and_spans_of_another_each_get_their_own_facts() -> None:
    mapper = SegmentMapper()
    ec2 = {"service.name": "shop", "cloud.platform": "aws_ec2", "host.id": "i-1"}
    eks = {"service.name": "cart", "cloud.platform": "aws_eks", "k8s.cluster.name": "prod"}
    docs = [orjson.loads(mapper.convert(span_record(resource=r), now=NOW)) for r in (ec2, ec2, eks, ec2)]
    assert [d["origin"] for d in docs] == ["AWS::EC2::Instance"] * 2 + ["AWS::EKS::Container", "AWS::EC2::Instance"]
    assert [d["name"] for d in docs] == ["shop", "shop", "cart", "shop"]
    ec2["host.type"] = "m7g.large"  # the same dict, changed: not served from the remembered facts
    later = orjson.loads(mapper.convert(span_record(resource=ec2), now=NOW))
    assert later["aws"]["ec2"]["instance_size"] == "m7g.large"
