"""OTLP span records (docs/receivers.md, the otlp contract) → X-Ray segment documents.

The mapping follows the one the OpenTelemetry Collector's AWS X-Ray exporter documents and implements
(`exporter/awsxrayexporter/internal/translator`, read 2026-12-06); docs/traces.md "OTLP spans in X-Ray" has the
table. In short:

- trace id `1-<first 8 hex>-<other 24 hex>`. X-Ray reads the first 32 bits as the request's start time: unless
  `skip_timestamp_validation`, a span whose first 32 bits are not a time in the past 28 days (or at most 5
  minutes ahead) is rejected, as the exporter does (SDKs must use the X-Ray id generator);
- server and consumer spans, and spans without a parent, are segments; other spans are subsegments with
  `parent_id`, `namespace` `aws` for AWS SDK calls (`rpc.system` `aws-api`) and `remote` for other client spans;
- the name: `aws.local.service` / `aws.remote.service`, `peer.service`, `aws.service`, `db.name@host`,
  the resource's `service.name` (server spans), `rpc.service`, `http.host`, `net.peer.name`, the span name;
  characters X-Ray does not allow are removed, at most 200 characters;
- `http` from the old (`http.method`, `http.status_code`, `http.url`, ...) and the current (`http.request.method`,
  `http.response.status_code`, `url.full`, `server.address`, ...) semantic conventions;
- `aws` (operation, region, request id, queue url, table names, account; ec2/ecs/eks/beanstalk, the SDK and
  CloudWatch log groups from the resource), `sql` for SQL databases, `service.version`, `origin` from
  `cloud.platform`, `user` from `enduser.id`;
- error / fault / throttle and `cause` (xray_causes.py);
- annotations: the attributes named in `indexed_attributes` (or all, `index_all_attributes`) and in a span's
  `aws.xray.annotations` list, with keys reduced to letters, digits and `_`; every other attribute, and the
  resource's as `otel.resource.<key>` (segments only), is metadata under `default`; `aws.xray.metadata.<ns>`
  JSON strings become metadata namespace `<ns>`.

Never raises on a record: `convert` returns the document or a `SpanRejected` reason.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from collector_plugins.common.otlp.xray_aws import aws_block, compact, resource_facts
from collector_plugins.common.otlp.xray_causes import flags, make_cause, status_code_of

MAX_AGE_SECONDS = 28 * 24 * 3600  # X-Ray keeps 30 days; the exporter's margin
MAX_SKEW_SECONDS = 5 * 60
MAX_NAME_LENGTH = 200
DEFAULT_NAME = "span"
SEGMENT_KINDS = frozenset(("server", "consumer"))
SQL_SYSTEMS = frozenset(
    ("db2", "derby", "hive", "mariadb", "mssql", "mysql", "oracle", "postgresql", "sqlite", "teradata", "other_sql")
)
ANNOTATIONS_ATTRIBUTE = "aws.xray.annotations"
METADATA_PREFIX = "aws.xray.metadata."
_NAME_DROP = re.compile(r"[^ 0-9\w.:/%&#=+\\\-@]")
_ANNOTATION_KEY = re.compile(r"[^A-Za-z0-9_]")
_HEX = frozenset("0123456789abcdef")

# Span attributes the `http` block consumes (left out of metadata), old and new conventions.
HTTP_KEYS = frozenset(
    (
        "http.method", "http.request.method", "http.client_ip", "client.address", "http.user_agent",
        "user_agent.original", "http.status_code", "http.response.status_code", "http.url", "url.full",
        "http.scheme", "url.scheme", "http.host", "http.target", "url.path", "url.query", "http.server_name",
        "server.address", "server.port", "net.host.port", "host.name", "net.host.name", "net.peer.name",
        "net.peer.port", "net.peer.ip", "network.peer.address", "http.response_content_length",
        "http.response.body.size",
    )
)  # fmt: skip
_HTTP_MARKERS = (
    "http.method", "http.request.method", "http.client_ip", "client.address", "http.user_agent",
    "user_agent.original", "http.status_code", "http.response.status_code", "http.url", "url.full", "http.scheme",
    "url.scheme", "http.host", "http.target", "url.path", "http.server_name", "net.host.port", "server.port",
)  # fmt: skip
SQL_KEYS = frozenset(("db.connection_string", "db.system", "db.name", "db.namespace", "db.statement", "db.user"))
ORIGINS = {
    "aws_app_runner": "AWS::AppRunner::Service",
    "aws_eks": "AWS::EKS::Container",
    "aws_elastic_beanstalk": "AWS::ElasticBeanstalk::Environment",
    "aws_ec2": "AWS::EC2::Instance",
}
ECS_ORIGINS = {"ec2": "AWS::ECS::EC2", "fargate": "AWS::ECS::Fargate"}


class SpanRejected(ValueError):
    """A span record that cannot become an X-Ray document; `str()` is the reason (starts with a code)."""


@dataclass(frozen=True, slots=True)
class SegmentOptions:
    """What the user chooses about the mapping (the `xray` output's `otlp:` settings)."""

    indexed_attributes: frozenset[str] = frozenset()
    index_all_attributes: bool = False
    skip_timestamp_validation: bool = False


def is_span_record(record: Any) -> bool:
    return type(record) is dict and record.get("format") == "otlp"


def xray_trace_id(trace_id: str) -> str:
    return f"1-{trace_id[:8]}-{trace_id[8:]}"


def _hex_id(value: Any, length: int) -> TypeGuard[str]:
    return type(value) is str and len(value) == length and _HEX.issuperset(value) and value.strip("0") != ""


def _str(value: Any) -> str:
    """A string attribute's value; "" for any other type (as pdata's `Str()` answers)."""
    return value if type(value) is str else ""


def _text(value: Any) -> str:
    """Any scalar attribute as text (ports often come as ints)."""
    if type(value) is str:
        return value
    if type(value) is int or type(value) is float:
        return str(value)
    return ""


def fix_segment_name(name: str) -> str:
    """X-Ray's allowed characters (letters, digits, whitespace and `_ . : / % & # = + \\ - @`), ≤ 200."""
    name = _NAME_DROP.sub("", name)[:MAX_NAME_LENGTH]
    return name if name.strip() else DEFAULT_NAME


def fix_annotation_key(key: str) -> str:
    """X-Ray filters only see alphanumeric keys with `_`: every other character becomes `_`."""
    return _ANNOTATION_KEY.sub("_", key)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _seconds(span: dict[str, Any], nanos_key: str, seconds_key: str) -> float:
    nanos = span.get(nanos_key)
    if type(nanos) is int and nanos > 0:
        return nanos / 1e9
    seconds = span.get(seconds_key)
    if (type(seconds) is float or type(seconds) is int) and seconds == seconds and seconds > 0:
        return float(seconds)
    raise SpanRejected(f"invalid_time: {seconds_key} missing or not a positive number")


@dataclass(frozen=True, slots=True)
class _ResourceFacts:
    origin: str
    aws: dict[str, Any] | None
    version: str
    annotations: dict[str, Any]
    metadata: dict[str, Any]


class SegmentMapper:
    """Converts span records to X-Ray documents with one set of options. Stateless apart from the options."""

    def __init__(self, options: SegmentOptions | None = None) -> None:
        self.options = options or SegmentOptions()
        self._indexed = self.options.indexed_attributes
        self._last_resource: tuple[dict[str, Any], int, _ResourceFacts] | None = None

    def convert(self, span: Any, now: float | None = None) -> str:
        """The X-Ray JSON document of one span record; raises `SpanRejected` (never anything else)."""
        try:
            segment = self.segment(span, time.time() if now is None else now)
            return orjson.dumps(segment, default=_json_default).decode()
        except SpanRejected:
            raise
        except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
            raise SpanRejected(f"unconvertible_span: {type(exc).__name__}: {exc}") from None

    def convert_many(self, spans: Iterable[Any], now: float | None = None) -> list[str | SpanRejected]:
        """One document or one rejection per record, in order."""
        stamp = time.time() if now is None else now
        out: list[str | SpanRejected] = []
        for span in spans:
            try:
                out.append(self.convert(span, stamp))
            except SpanRejected as exc:
                out.append(exc)
        return out

    def segment(self, span: Any, now: float) -> dict[str, Any]:
        """The segment document (a dict) of one span record."""
        if type(span) is not dict:
            raise SpanRejected(f"not_a_span: a {type(span).__name__}, not a span record")
        trace_id = span.get("trace_id")
        if not _hex_id(trace_id, 32):
            raise SpanRejected("invalid_trace_id: not 32 lowercase hex digits, or all zero")
        if not self.options.skip_timestamp_validation:
            epoch = int(trace_id[:8], 16)
            if now - epoch > MAX_AGE_SECONDS or epoch - now > MAX_SKEW_SECONDS:
                raise SpanRejected(
                    f"trace_id_not_xray: its first 32 bits ({trace_id[:8]}) are not a time within the past 28 days; "
                    "use the X-Ray id generator in the SDK, or skip_timestamp_validation"
                )
        span_id = span.get("span_id")
        if not _hex_id(span_id, 16):
            raise SpanRejected("invalid_span_id: not 16 lowercase hex digits, or all zero")
        parent = span.get("parent_span_id") or ""
        if parent and not _hex_id(parent, 16):
            raise SpanRejected("invalid_parent_span_id: not 16 lowercase hex digits")
        start = _seconds(span, "start_time_unix_nano", "start_time")
        end = _seconds(span, "end_time_unix_nano", "end_time")
        start_ns, end_ns = span.get("start_time_unix_nano"), span.get("end_time_unix_nano")
        if end < start or (type(start_ns) is int and type(end_ns) is int and 0 < end_ns < start_ns):
            raise SpanRejected("invalid_time: end before start")  # nanoseconds compared exactly (floats round)
        attrs = span.get("attributes")
        attrs = attrs if type(attrs) is dict else {}
        resource = span.get("resource")
        resource = resource if type(resource) is dict else {}
        kind = span.get("kind")
        is_segment = kind in SEGMENT_KINDS or not parent

        consumed: set[str] = {ANNOTATIONS_ATTRIBUTE}
        doc: dict[str, Any] = {"id": span_id, "trace_id": xray_trace_id(trace_id)}
        name, namespace = self._name(span, kind, attrs, resource)
        doc["name"] = name
        doc["start_time"] = start
        doc["end_time"] = end
        if parent:
            doc["parent_id"] = parent
        if not is_segment:
            doc["type"] = "subsegment"
            if namespace:
                doc["namespace"] = namespace
        http = _http(kind, attrs, span.get("events") or (), consumed)
        if http:
            doc["http"] = http
        cause = make_cause(span, attrs, resource, consumed)
        error, fault, throttle = flags(status_code_of(attrs), _status_code(span))
        if error:
            doc["error"] = True
        if fault:
            doc["fault"] = True
        if throttle:
            doc["throttle"] = True
        if cause:
            doc["cause"] = cause
        facts = self._resource_facts(resource)
        if is_segment and facts.origin:
            doc["origin"] = facts.origin
        aws = aws_block(attrs, facts.aws, consumed)
        if aws:
            doc["aws"] = aws
        if is_segment and facts.version:
            doc["service"] = {"version": facts.version}
        sql = _sql(span, attrs, consumed)
        if sql:
            doc["sql"] = sql
        user = attrs.get("enduser.id")
        if type(user) is str and user:
            doc["user"] = user
            consumed.add("enduser.id")
        annotations, metadata = self._attributes(attrs, facts if is_segment else None, consumed)
        if annotations:
            doc["annotations"] = annotations
        if metadata:
            doc["metadata"] = metadata
        links = _links(span.get("links"))
        if links:
            doc["links"] = links
        return doc

    def _name(
        self, span: dict[str, Any], kind: Any, attrs: dict[str, Any], resource: dict[str, Any]
    ) -> tuple[str, str]:
        name = ""
        aws_sdk = attrs.get("rpc.system") == "aws-api"
        if kind == "server" or (kind == "internal" and attrs.get("aws.span.kind") == "LOCAL_ROOT"):
            name = _str(attrs.get("aws.local.service"))
        elif kind in ("client", "producer", "consumer"):
            name = _str(attrs.get("aws.remote.service"))
            if aws_sdk:
                name = name.removeprefix("AWS.SDK.").removeprefix("AWS::")
        if not name:
            name = _str(attrs.get("peer.service"))
        namespace = "aws" if aws_sdk else ""
        if not name:
            name = _str(attrs.get("aws.service"))
            if name:
                namespace = "aws"
        if not name:
            name = _str(attrs.get("db.name")) or _str(attrs.get("db.namespace"))
            if name:
                host = _db_host(_str(attrs.get("db.connection_string")))
                if host:
                    name += "@" + host
        if not name and kind == "server":
            name = _str(resource.get("service.name"))
        if not name:
            name = _str(attrs.get("rpc.service")) or _str(attrs.get("http.host")) or _str(attrs.get("net.peer.name"))
        if not name:
            name = _str(span.get("name"))
        if not namespace and (kind == "client" or (kind in ("producer", "consumer") and "aws.remote.service" in attrs)):
            namespace = "remote"
        return fix_segment_name(name), namespace

    def _resource_facts(self, resource: dict[str, Any]) -> _ResourceFacts:
        """What a resource gives every segment, worked out once per resource: the spans of one resource share
        one dict (the otlp input's records do), so the last one is remembered by identity."""
        last = self._last_resource
        if last is not None and last[0] is resource and last[1] == len(resource):
            return last[2]
        index_all, indexed = self.options.index_all_attributes, self._indexed
        annotations: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        for key, value in resource.items():
            key = "otel.resource." + key
            if (index_all or key in indexed) and _annotation_value(value):
                annotations[fix_annotation_key(key)] = value
            elif value is not None:
                metadata[key] = value
        version = resource.get("service.version")
        facts = _ResourceFacts(
            origin=_origin(resource),
            aws=resource_facts(resource),
            version=version if type(version) is str else "",
            annotations=annotations,
            metadata=metadata,
        )
        self._last_resource = (resource, len(resource), facts)
        return facts

    def _attributes(
        self, attrs: dict[str, Any], facts: _ResourceFacts | None, consumed: set[str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        index_all = self.options.index_all_attributes
        indexed = self._indexed
        extra = attrs.get(ANNOTATIONS_ATTRIBUTE)
        if type(extra) is list:
            indexed = indexed | {k for k in extra if type(k) is str}
        annotations: dict[str, Any] = {}
        default: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        if facts is not None:
            annotations.update(facts.annotations)
            default.update(facts.metadata)
            if type(extra) is list:  # the span's own list may name resource attributes too
                for key in list(default):
                    if key in indexed and _annotation_value(default[key]):
                        annotations[fix_annotation_key(key)] = default.pop(key)
        for key, value in attrs.items():
            if key in consumed and key not in indexed:
                continue
            if index_all or key in indexed:
                if _annotation_value(value):
                    annotations[fix_annotation_key(key)] = value
            elif key.startswith(METADATA_PREFIX) and type(value) is str:
                namespace = key[len(METADATA_PREFIX) :]
                try:
                    parsed = orjson.loads(value)
                except orjson.JSONDecodeError:
                    parsed = None
                if type(parsed) is not dict:
                    default[key] = value
                elif namespace.lower() == "default":
                    default.update(parsed)
                else:
                    metadata[namespace] = parsed
            elif value is not None:
                default[key] = value
        if default:
            metadata["default"] = default
        return annotations, metadata


def _annotation_value(value: Any) -> bool:
    """X-Ray annotations are strings, numbers or booleans (finite numbers: JSON has no NaN)."""
    t = type(value)
    if t is float:
        return bool(value == value and value not in (float("inf"), float("-inf")))
    return t is str or t is bool or (t is int and -(2**63) <= value < 2**63)


def _status_code(span: dict[str, Any]) -> int:
    status = span.get("status")
    code = status.get("code") if type(status) is dict else 0
    return code if type(code) is int else 0


def _db_host(connection: str) -> str:
    """The host of a connection string (`jdbc:mysql://db.example:3306/x` → `db.example`), or ""."""
    text = connection.removeprefix("jdbc:")
    _, sep, rest = text.partition("://")
    if not sep:
        return ""
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.split(":", 1)[0]


def _http(kind: Any, attrs: dict[str, Any], events: Any, consumed: set[str]) -> dict[str, Any] | None:
    present = [k for k in HTTP_KEYS if k in attrs] if len(attrs) < len(HTTP_KEYS) else list(HTTP_KEYS & attrs.keys())
    if not present:
        return None
    consumed.update(present)
    if not any(k in attrs for k in _HTTP_MARKERS):
        return None
    request: dict[str, Any] = {}
    response: dict[str, Any] = {}
    method = _str(attrs.get("http.method")) or _str(attrs.get("http.request.method"))
    if method:
        request["method"] = method
    forwarded = _str(attrs.get("http.client_ip")) or (_str(attrs.get("client.address")) if kind == "server" else "")
    if forwarded:
        request["client_ip"] = forwarded
        request["x_forwarded_for"] = True
    else:
        peer = _str(attrs.get("net.peer.ip")) or _str(attrs.get("network.peer.address"))
        if peer and kind == "server":
            request["client_ip"] = peer
    agent = _str(attrs.get("http.user_agent")) or _str(attrs.get("user_agent.original"))
    if agent:
        request["user_agent"] = agent
    url = _url(kind, attrs)
    if url:
        request["url"] = url
    status = status_code_of(attrs)
    if status is not None:
        response["status"] = status
    length = _content_length(attrs, events)
    if length:
        response["content_length"] = length
    http: dict[str, Any] = {}
    if request:
        http["request"] = request
    if response:
        http["response"] = response
    return http or None


def _url(kind: Any, attrs: dict[str, Any]) -> str:
    full = _str(attrs.get("http.url")) or _str(attrs.get("url.full"))
    if full:
        return full
    scheme = _str(attrs.get("http.scheme")) or _str(attrs.get("url.scheme")) or "http"
    host = _str(attrs.get("http.host"))
    port = ""
    if not host:
        if kind == "server":
            host = (
                _str(attrs.get("server.address"))
                or _str(attrs.get("http.server_name"))
                or _str(attrs.get("net.host.name"))
                or _str(attrs.get("host.name"))
            )
            port = _text(attrs.get("server.port")) or _text(attrs.get("net.host.port"))
        else:
            host = (
                _str(attrs.get("server.address"))
                or _str(attrs.get("net.peer.name"))
                or _str(attrs.get("net.peer.ip"))
                or _str(attrs.get("network.peer.address"))
            )
            port = _text(attrs.get("server.port")) or _text(attrs.get("net.peer.port"))
    if not host:
        return ""
    url = f"{scheme}://{host}"
    if port and not (scheme == "http" and port == "80") and not (scheme == "https" and port == "443"):
        url += ":" + port
    target = _str(attrs.get("http.target"))
    if not target:
        target = _str(attrs.get("url.path")) or "/"
        query = _str(attrs.get("url.query"))
        if query:
            target += "?" + query
    return url + target


def _content_length(attrs: dict[str, Any], events: Any) -> int:
    for key in ("http.response_content_length", "http.response.body.size"):
        value = attrs.get(key)
        if type(value) is int and value > 0:
            return value
    for event in events if type(events) is list else ():
        event_attrs = event.get("attributes") if type(event) is dict else None
        if type(event_attrs) is dict and event_attrs.get("message.type") == "RECEIVED":
            size = event_attrs.get("messaging.message_payload_size_bytes")
            if type(size) is int and size > 0:
                return size
    return 0


def _origin(resource: dict[str, Any]) -> str:
    provider = resource.get("cloud.provider")
    if provider is not None and provider != "aws":
        return ""
    platform = resource.get("cloud.platform")
    if platform == "aws_ecs":
        return ECS_ORIGINS.get(_str(resource.get("aws.ecs.launchtype")), "AWS::ECS::Container")
    return ORIGINS.get(platform, "") if type(platform) is str else ""


def _sql(span: dict[str, Any], attrs: dict[str, Any], consumed: set[str]) -> dict[str, Any] | None:
    system = attrs.get("db.system")
    if system not in SQL_SYSTEMS:
        return None
    consumed.update(k for k in SQL_KEYS if k in attrs)
    database = _str(attrs.get("db.name")) or _str(attrs.get("db.namespace"))
    connection = _str(attrs.get("db.connection_string")) or "localhost"
    query = _str(attrs.get("db.statement")) or _str(attrs.get("db.query.text"))
    if "db.query.text" in attrs:
        consumed.add("db.query.text")
    return compact(
        {
            # The exporter's choice: the span name (the connection string as URL helps nobody).
            "url": _str(span.get("name")),
            "connection_string": f"{connection}/{database}",
            "database_type": system,
            "user": _str(attrs.get("db.user")),
            "sanitized_query": query,
        }
    )


def _links(links: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for link in links if type(links) is list else ():
        if type(link) is not dict:
            continue
        trace_id, span_id = link.get("trace_id"), link.get("span_id")
        if not _hex_id(trace_id, 32) or not _hex_id(span_id, 16):
            continue  # a link X-Ray could not read is left out, the span is kept
        entry: dict[str, Any] = {"trace_id": xray_trace_id(trace_id), "id": span_id}
        attrs = link.get("attributes")
        if type(attrs) is dict and attrs:
            entry["attributes"] = attrs
        out.append(entry)
    return out
