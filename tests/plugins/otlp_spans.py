"""Span records shaped exactly as the OTLP contract says the `otlp` input makes them (one dict per span)."""

from __future__ import annotations

import os
import time
from typing import Any

KINDS = ("unspecified", "internal", "server", "client", "producer", "consumer")


def xray_style_trace_id(at: float | None = None) -> str:
    """A W3C trace id whose first 32 bits are the time, as the X-Ray id generator makes them."""
    return f"{int(time.time() if at is None else at):08x}{os.urandom(12).hex()}"


def span_record(
    *,
    trace_id: str | None = None,
    span_id: str | None = None,
    parent: str = "",
    name: str = "GET /cart",
    kind: str = "server",
    attributes: dict[str, Any] | None = None,
    resource: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    links: list[dict[str, Any]] | None = None,
    status: tuple[int, str] = (0, ""),
    start: float | None = None,
    duration: float = 0.25,
) -> dict[str, Any]:
    begin = time.time() - 1 if start is None else start
    end = begin + duration
    return {
        "format": "otlp",
        "trace_id": trace_id or xray_style_trace_id(begin),
        "span_id": span_id or os.urandom(8).hex(),
        "parent_span_id": parent,
        "trace_state": "",
        "flags": 1,
        "name": name,
        "kind": kind,
        "start_time": begin,
        "end_time": end,
        "start_time_unix_nano": int(begin * 1e9),
        "end_time_unix_nano": int(end * 1e9),
        "attributes": attributes or {},
        "events": events or [],
        "links": links or [],
        "status": {"code": status[0], "message": status[1]},
        "resource": {"service.name": "shop"} if resource is None else resource,
        "scope": {"name": "tests", "version": "1", "attributes": {}},
        "dropped_attributes_count": 0,
        "dropped_events_count": 0,
        "dropped_links_count": 0,
        "timestamp": end,
    }


def exception_event(kind: str, message: str, stacktrace: str = "") -> dict[str, Any]:
    attrs = {"exception.type": kind, "exception.message": message}
    if stacktrace:
        attrs["exception.stacktrace"] = stacktrace
    return {"name": "exception", "time_unix_nano": time.time_ns(), "attributes": attrs, "dropped_attributes_count": 0}
