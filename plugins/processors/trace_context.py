"""`trace_context`: find the trace a log line belongs to and set normalised `trace_id` / `span_id` fields.

Recognised, in this order of preference (the first one found in a field wins):

1. the X-Ray trace header, `Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=1`,
   wherever it appears: an `X-Amzn-Trace-Id: ...` header in an access log, an
   ALB log's `"Root=1-..."` or `"Self=1-...;Root=1-..."` field, a Lambda's
   `_X_AMZN_TRACE_ID` (the `Parent` and `Sampled` parts are optional, in any order);
2. a W3C `traceparent` (`traceparent: 00-<32 hex>-<16 hex>-<2 hex>`, as a header
   or a `key=value` / JSON field);
3. a trace id under a key that names one (`trace_id`, `traceId`, `xray_trace_id`,
   `X-Amzn-Trace-Id`, ...; `=`, `:` or JSON), in either form, plus a 16-hex
   `span_id` / `spanId` next to it when present (OpenTelemetry-style log lines).

X-Ray and W3C trace ids are the same 128 bits (`1-5759e988-bd862e3fe1be46a994272793`
is `5759e988bd862e3fe1be46a994272793`), so both forms are set: `trace_id` (W3C,
32 lowercase hex, what OpenTelemetry and OpenSearch use) and `xray_trace_id`
(what X-Ray and CloudWatch show). `span_id` is the X-Ray `Parent` or the
traceparent's parent id.

Cost: the patterns are compiled once (for `str` and for raw `bytes` messages, so
bytes are never decoded); a message that contains none of the markers
(`Root=1-`, `race`, `RACE`) is skipped after three substring tests.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import Field, field_validator

from collector.api import ComponentContext, Processor, ProcessorConfig
from collector.events import LOGS, Batch
from collector_plugins.common.trace_index import xray_form


class TraceContext(NamedTuple):
    trace_id: str  # 32 lowercase hex (W3C form)
    span_id: str | None
    sampled: bool | None

    @property
    def xray_trace_id(self) -> str:
        return xray_form(self.trace_id)


_XRAY_ROOT = r"Root=1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})"
_TOKEN_TAIL = r"[^\s\"',]*"
_TRACEPARENT = (
    r"(?i:traceparent)[\"']?\s*[:=]\s*[\"']?([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?![0-9a-fA-F-])"
)
_KEYED_TRACE_ID = (
    r"(?i:x[-_]amzn[-_]trace[-_]id|(?:xray|aws)[-_]?trace[-_]?id|trace[-_]?id)[\"']?\s*[:=]\s*[\"']?"
    r"(?:1-([0-9a-fA-F]{8})-([0-9a-fA-F]{24})|([0-9a-fA-F]{32}))(?![0-9a-fA-F])"
)
_KEYED_SPAN_ID = r"(?i:span[-_]?id)[\"']?\s*[:=]\s*[\"']?([0-9a-fA-F]{16})(?![0-9a-fA-F])"
_HEX16 = r"[0-9a-fA-F]{16}"
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# How far before `Root=` the header token may start (for `Self=...;Parent=...;` written before it).
_LOOKBEHIND = 256


class _Patterns:
    """The compiled patterns for one text type (`str` or `bytes`)."""

    def __init__(self, text_type: type) -> None:
        def compile_(pattern: str) -> re.Pattern[Any]:
            return re.compile(pattern.encode() if text_type is bytes else pattern)

        self.is_bytes = text_type is bytes
        self.root = compile_(_XRAY_ROOT)
        self.tail = compile_(_TOKEN_TAIL)
        self.traceparent = compile_(_TRACEPARENT)
        self.keyed_trace = compile_(_KEYED_TRACE_ID)
        self.keyed_span = compile_(_KEYED_SPAN_ID)
        self.hex16 = compile_(_HEX16)
        self.delimiters = frozenset(b" \t\r\n\"'," if self.is_bytes else " \t\r\n\"',")
        self.markers = (b"Root=1-", b"race", b"RACE") if self.is_bytes else ("Root=1-", "race", "RACE")

    def text(self, value: Any) -> str:
        # Matched groups are ASCII; a header token may hold other bytes, which never match a key.
        return value.decode("latin-1") if self.is_bytes else value


_STR = _Patterns(str)
_BYTES = _Patterns(bytes)


def _xray_header(p: _Patterns, message: Any, match: re.Match[Any]) -> TraceContext:
    """The trace context of an X-Ray header whose `Root=` is `match`: Parent and Sampled from the same token."""
    trace = (p.text(match.group(1)) + p.text(match.group(2))).lower()
    start = match.start()
    floor = max(0, start - _LOOKBEHIND)
    while start > floor and message[start - 1] not in p.delimiters:
        start -= 1
    tail = p.tail.match(message, match.end())
    token = p.text(message[start : tail.end() if tail else match.end()])
    span: str | None = None
    sampled: bool | None = None
    for part in token.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "Parent" and _STR.hex16.fullmatch(value):
            span = value.lower()
        elif key == "Sampled":
            sampled = True if value == "1" else False if value == "0" else None
    return TraceContext(trace, span, sampled)


def extract(message: str | bytes) -> TraceContext | None:
    """The first trace context in `message` (see the module docstring for the order), or None."""
    p = _BYTES if isinstance(message, bytes) else _STR
    m1, m2, m3 = p.markers
    if m1 not in message and m2 not in message and m3 not in message:  # type: ignore[operator]
        return None
    match = p.root.search(message)
    if match is not None:
        return _xray_header(p, message, match)
    match = p.traceparent.search(message)
    if match is not None:
        version, trace, span, flags = (p.text(g) for g in match.groups())
        if version != "ff" and trace != _ZERO_TRACE and span != _ZERO_SPAN:
            return TraceContext(trace, span, bool(int(flags, 16) & 1))
    match = p.keyed_trace.search(message)
    if match is not None:
        epoch, unique, w3c = match.groups()
        trace = (p.text(epoch) + p.text(unique)) if epoch is not None else p.text(w3c)
        if trace.lower() != _ZERO_TRACE:
            span_match = p.keyed_span.search(message)
            keyed_span = p.text(span_match.group(1)).lower() if span_match else None
            return TraceContext(trace.lower(), keyed_span, None)
    return None


class TraceContextConfig(ProcessorConfig):
    type: Literal["trace_context"] = Field(
        description="Finds X-Ray or W3C trace context in log lines and sets trace_id / span_id fields.",
        examples=["trace_context"],
    )
    source_fields: list[str] = Field(
        default=["message"],
        min_length=1,
        description="Top-level fields searched, in order, for trace context (text or raw bytes); the first hit wins.",
        examples=[["message"], ["message", "request_headers"]],
    )
    trace_id_field: str | None = Field(
        default="trace_id",
        description="Field set to the trace id in W3C form (32 lowercase hex); null to not set it.",
        examples=["trace_id"],
    )
    xray_trace_id_field: str | None = Field(
        default="xray_trace_id",
        description="Field set to the trace id in X-Ray form (1-<8 hex>-<24 hex>); null to not set it.",
        examples=["xray_trace_id"],
    )
    span_id_field: str | None = Field(
        default="span_id",
        description="Field set to the span (segment) id, 16 lowercase hex, when there is one; null to not set it.",
        examples=["span_id"],
    )
    sampled_field: str | None = Field(
        default=None,
        description="Field set to true/false from the sampling decision, when there is one; null: not set.",
        examples=["trace_sampled"],
    )
    overwrite: bool = Field(
        default=False,
        description="Replace trace fields a record already has; false leaves a record with `trace_id_field` as it is.",
        examples=[False],
    )

    @field_validator("source_fields")
    @classmethod
    def _check_sources(cls, value: list[str]) -> list[str]:
        if any(not name for name in value):
            raise ValueError("source_fields cannot contain an empty name")
        return value


class TraceContextProcessor(Processor):
    type_name: ClassVar[str] = "trace_context"
    description: ClassVar[str] = (
        "Finds X-Ray (Root=1-...) or W3C traceparent context in log lines and sets trace_id, xray_trace_id, span_id."
    )
    Config: ClassVar[type[TraceContextConfig]] = TraceContextConfig
    accepts: ClassVar[frozenset[str]] = frozenset((LOGS,))
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: TraceContextConfig

    def __init__(self, config: TraceContextConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.records = 0
        """Log records looked at."""
        self.with_trace = 0
        """Records that got trace fields."""
        self._sources = tuple(config.source_fields)
        guard = config.trace_id_field or config.xray_trace_id_field
        self._skip_if_present = None if config.overwrite else guard

    def counters(self) -> dict[str, float]:
        return {"records": self.records, "with_trace": self.with_trace}

    def process(self, batch: Batch) -> Batch:
        cfg = self.config
        trace_field, xray_field = cfg.trace_id_field, cfg.xray_trace_id_field
        span_field, sampled_field = cfg.span_id_field, cfg.sampled_field
        sources, present = self._sources, self._skip_if_present
        found = 0
        for record in batch.records:
            if present is not None and present in record:
                continue
            for source in sources:
                value = record.get(source)
                if type(value) is not str and type(value) is not bytes:
                    continue
                context = extract(value)
                if context is None:
                    continue
                if trace_field:
                    record[trace_field] = context.trace_id
                if xray_field:
                    record[xray_field] = context.xray_trace_id
                if span_field and context.span_id is not None:
                    record[span_field] = context.span_id
                if sampled_field and context.sampled is not None:
                    record[sampled_field] = context.sampled
                found += 1
                break
        self.records += len(batch.records)
        self.with_trace += found
        return batch
