"""`trace_index` and `collector trace` with OTLP spans and OTLP log records next to X-Ray segments and log lines."""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

from collector.api import ComponentContext, HostFacts
from collector.events import LOGS, TRACES, Batch
from collector_plugins.common.trace_index import index_path, lookup
from collector_plugins.outputs.trace_index.cli import run_trace_command
from collector_plugins.outputs.trace_index.output import TraceIndexConfig, TraceIndexOutput
from tests.plugins.otlp_spans import span_record

W3C = "655f2a10bd862e3fe1be46a994272793"
XRAY = "1-655f2a10-bd862e3fe1be46a994272793"
T0 = 0x655F2A10 + 0.5


def daemon_segment(segment_id: str, start: float) -> dict[str, Any]:
    doc = {"trace_id": XRAY, "id": segment_id, "name": "legacy", "start_time": start, "end_time": start + 1}
    raw = orjson.dumps(doc)
    return {"raw": raw, "trace_id": XRAY, "id": segment_id, "name": "legacy", "start_time": start}


def otlp_log(message: str, at: float, trace_id: str = W3C) -> dict[str, Any]:
    return {
        "format": "otlp",
        "message": message,
        "timestamp": at,
        "time_unix_nano": int(at * 1e9),
        "observed_time_unix_nano": int(at * 1e9),
        "severity_text": "INFO",
        "severity_number": 9,
        "trace_id": trace_id,
        "span_id": "1111111111111111",
        "attributes": {},
        "resource": {"service.name": "checkout"},
        "scope": {"name": "app", "version": "", "attributes": {}},
        "flags": 1,
        "dropped_attributes_count": 0,
    }


def _config(tmp_path: Path, name: str) -> Any:
    components = {name: SimpleNamespace(section="outputs", type_name="trace_index")}
    return SimpleNamespace(data_dir=tmp_path, graph=SimpleNamespace(components=components))


async def test_spans_segments_and_logs_of_one_trace_show_together(tmp_path: Path) -> None:
    ctx = ComponentContext("recent", logging.getLogger("t"), tmp_path, HostFacts("h"))
    output = TraceIndexOutput(TraceIndexConfig(type="trace_index", inputs=["x"]), ctx)
    root = span_record(trace_id=W3C, span_id="1111111111111111", kind="server", name="POST /checkout", start=T0,
                       attributes={"http.response.status_code": 502}, status=(2, "upstream failed"))  # fmt: skip
    child = span_record(trace_id=W3C, parent="1111111111111111", kind="client", name="charge", start=T0 + 0.1)
    other = span_record(trace_id="655f2a10" + "0" * 23 + "1", start=T0)
    await output.start()
    try:
        await output.write(Batch(TRACES, [root, daemon_segment("53995c3f42cd8ad8", T0 + 0.05), child, other]))
        await output.write(Batch(LOGS, [otlp_log("charging card", T0 + 0.12), {"message": "x", "timestamp": 1.0}]))
    finally:
        await output.stop()
    assert output.counters() == {"segments": 1, "spans": 3, "logs": 1, "untraced": 1, "trimmed": 0}
    entries = lookup(index_path(tmp_path, "recent"), W3C)
    assert [e.kind for e in entries] == ["span", "segment", "span", "log"]
    assert orjson.loads(entries[0].body)["span_id"] == "1111111111111111"

    out = io.StringIO()
    assert run_trace_command(argparse.Namespace(trace_id=XRAY, format="text"), _config(tmp_path, "recent"), out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == f"trace {XRAY} ({W3C}): 1 segments, 2 spans, 1 log lines"
    assert lines[1].endswith(
        "span POST /checkout kind=server id=1111111111111111 duration=250.0ms http=502 status=error (upstream failed)"
    )
    assert "segment legacy id=53995c3f42cd8ad8" in lines[2]
    expected = f"span charge kind=client id={child['span_id']} parent=1111111111111111 duration=250.0ms"
    assert lines[3].endswith(expected)
    assert lines[4].endswith("log [checkout] charging card")

    out = io.StringIO()
    assert run_trace_command(argparse.Namespace(trace_id=W3C, format="json"), _config(tmp_path, "recent"), out) == 0
    rows = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [sorted(set(r) - {"time", "kind", "trace_id", "xray_trace_id"}) for r in rows] == [
        ["span"], ["document"], ["span"], ["record"]
    ]  # fmt: skip
    assert rows[0]["span"]["name"] == "POST /checkout" and rows[3]["record"]["message"] == "charging card"
