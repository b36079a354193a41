"""`collector trace TRACE_ID`: one request's segments, OTLP spans and log lines, in time order, from the local index.

Reads every `trace_index` output's database named in the config (read-only; a
running collector keeps writing meanwhile). Exit status: 0 when something was
found, 1 when nothing was (or no `trace_index` output is configured), 2 for a
malformed trace id.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any, TextIO

import orjson

from collector_plugins.common.trace_index import Entry, index_path, lookup, normalise_trace_id, xray_form

EXIT_FOUND, EXIT_NOT_FOUND, EXIT_USAGE = 0, 1, 2


def _when(seconds: float) -> str:
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def _segment_line(entry: Entry) -> str:
    try:
        doc: Any = orjson.loads(entry.body)
    except orjson.JSONDecodeError:
        return f"segment {entry.name} (unreadable document)"
    if not isinstance(doc, dict):
        return f"segment {entry.name}"
    kind = "subsegment" if doc.get("type") == "subsegment" else "segment"
    parts = [f"{kind} {doc.get('name', entry.name)} id={doc.get('id')}"]
    if doc.get("parent_id"):
        parts.append(f"parent={doc['parent_id']}")
    start, end = doc.get("start_time"), doc.get("end_time")
    if isinstance(start, int | float) and isinstance(end, int | float):
        parts.append(f"duration={(end - start) * 1000:.1f}ms")
    elif doc.get("in_progress"):
        parts.append("in_progress")
    status = (doc.get("http") or {}).get("response", {}).get("status") if isinstance(doc.get("http"), dict) else None
    if status is not None:
        parts.append(f"http={status}")
    flags = [flag for flag in ("error", "fault", "throttle") if doc.get(flag)]
    if flags:
        parts.append(",".join(flags))
    return " ".join(parts)


_STATUS = {1: "ok", 2: "error"}


def _span_line(entry: Entry) -> str:
    """An OTLP span, in the words of a segment line: name, kind, ids, duration, HTTP status, status."""
    try:
        span: Any = orjson.loads(entry.body)
    except orjson.JSONDecodeError:
        return f"span {entry.name} (unreadable record)"
    if not isinstance(span, dict):
        return f"span {entry.name}"
    parts = [f"span {span.get('name', entry.name)} kind={span.get('kind', '')} id={span.get('span_id')}"]
    if span.get("parent_span_id"):
        parts.append(f"parent={span['parent_span_id']}")
    start, end = span.get("start_time_unix_nano"), span.get("end_time_unix_nano")
    if isinstance(start, int) and isinstance(end, int):
        parts.append(f"duration={(end - start) / 1e6:.1f}ms")
    attrs: Any = span.get("attributes")
    attrs = attrs if isinstance(attrs, dict) else {}
    status_code = attrs.get("http.response.status_code", attrs.get("http.status_code"))
    if status_code is not None:
        parts.append(f"http={status_code}")
    status: Any = span.get("status")
    status = status if isinstance(status, dict) else {}
    if status.get("code") in _STATUS:
        text = _STATUS[status["code"]]
        parts.append(f"status={text}" + (f" ({status['message']})" if status.get("message") else ""))
    return " ".join(parts)


def _log_line(entry: Entry) -> str:
    try:
        record = orjson.loads(entry.body)
    except orjson.JSONDecodeError:
        return "log (unreadable record)"
    message = record.get("message", "") if isinstance(record, dict) else record
    source = f"[{entry.name}] " if entry.name else ""
    return f"log {source}{message}"


def run_trace_command(args: argparse.Namespace, config: Any, out: TextIO = sys.stdout) -> int:
    trace = normalise_trace_id(args.trace_id)
    if trace is None:
        print(
            f"{args.trace_id!r} is not a trace id: use the X-Ray form 1-5759e988-bd862e3fe1be46a994272793 "
            "or the W3C form 5759e988bd862e3fe1be46a994272793",
            file=sys.stderr,
        )
        return EXIT_USAGE
    names = [
        name
        for name, spec in config.graph.components.items()
        if spec.section == "outputs" and spec.type_name == "trace_index"
    ]
    if not names:
        print("no trace_index output in this config: add one fed by your xray input and traced logs", file=sys.stderr)
        return EXIT_NOT_FOUND
    entries: list[Entry] = []
    for name in names:
        path = index_path(config.data_dir, name)
        if path.exists():
            entries.extend(lookup(path, trace))
    entries.sort(key=lambda e: e.time)
    if args.format == "json":
        for entry in entries:
            body = orjson.loads(entry.body)
            line = {"time": entry.time, "kind": entry.kind, "trace_id": trace, "xray_trace_id": xray_form(trace)}
            line[{"segment": "document", "span": "span"}.get(entry.kind, "record")] = body
            out.write(orjson.dumps(line).decode() + "\n")
    else:
        segments = sum(1 for e in entries if e.kind == "segment")
        spans = sum(1 for e in entries if e.kind == "span")
        counts = f"{segments} segments, " + (f"{spans} spans, " if spans else "")
        logs = len(entries) - segments - spans
        out.write(f"trace {xray_form(trace)} ({trace}): {counts}{logs} log lines\n")
        lines = {"segment": _segment_line, "span": _span_line}
        for entry in entries:
            text = lines.get(entry.kind, _log_line)(entry)
            out.write(f"{_when(entry.time)}  {text}\n")
    return EXIT_FOUND if entries else EXIT_NOT_FOUND


class TraceCommand:
    """`collector trace`, registered in the `node_collector.commands` entry-point group."""

    name = "trace"
    help = "print one trace's segments, spans and log lines from the local index"
    description = (
        "Print the segments, OTLP spans and log lines of one trace, in time order, from the trace_index outputs "
        "of the config (works while the network is down). Exit 0 if found, 1 if not, 2 for a malformed id."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from collector.commands import add_config_argument

        parser.add_argument("trace_id", help="X-Ray (1-5759e988-bd86...) or W3C (5759e988bd86...) trace id")
        add_config_argument(parser)
        parser.add_argument("--format", choices=["text", "json"], default="text", help="output format")

    def run(self, args: argparse.Namespace) -> int:
        from collector.commands import load_config

        return run_trace_command(args, load_config(args.config))
