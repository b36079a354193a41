"""The local trace index (`trace_index` output) and `collector trace` over it."""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from collector.api import ComponentContext, HostFacts
from collector.events import LOGS, TRACES, Batch
from collector_plugins.common.trace_index import Entry, TraceIndex, index_path, lookup, normalise_trace_id
from collector_plugins.outputs.trace_index.cli import run_trace_command
from collector_plugins.outputs.trace_index.output import TraceIndexConfig, TraceIndexOutput

XRAY = "1-5759e988-bd862e3fe1be46a994272793"
W3C = "5759e988bd862e3fe1be46a994272793"


def segment(segment_id: str, start: float, **extra: Any) -> dict[str, Any]:
    doc = {"trace_id": XRAY, "id": segment_id, "name": "checkout", "start_time": start, "end_time": start + 0.25}
    doc.update(extra)
    raw = orjson.dumps(doc)
    return {"raw": raw, "trace_id": XRAY, "id": segment_id, "name": "checkout", "start_time": start}


def test_trace_ids_normalise_from_either_form() -> None:
    assert normalise_trace_id(XRAY) == W3C
    assert normalise_trace_id(W3C.upper()) == W3C
    assert normalise_trace_id(" " + XRAY + "\n") == W3C
    for bad in ("1-5759e988-bd862e3f", "zz59e988bd862e3fe1be46a994272793", "", "1-5759e988bd862e3fe1be46a99427279"):
        assert normalise_trace_id(bad) is None


async def test_output_indexes_segments_and_traced_logs_in_time_order(tmp_path: Path) -> None:
    ctx = ComponentContext("recent", logging.getLogger("t"), tmp_path, HostFacts("h"))
    output = TraceIndexOutput(TraceIndexConfig(type="trace_index", inputs=["x"]), ctx)
    await output.start()
    try:
        await output.write(Batch(TRACES, [segment("53995c3f42cd8ad8", 100.0), {"trace_id": "bad", "id": "x"}]))
        await output.write(
            Batch(
                LOGS,
                [
                    {"timestamp": 100.1, "message": "paid", "xray_trace_id": XRAY, "file": "/var/log/shop.log"},
                    {"timestamp": 99.9, "message": "received", "trace_id": W3C},
                    {"timestamp": 100.0, "message": "no trace"},
                    {"timestamp": 100.2, "message": b"raw bytes", "trace_id": "1-00000000-000000000000000000000001"},
                ],
            )
        )
    finally:
        await output.stop()
    assert output.counters() == {"segments": 1, "spans": 0, "logs": 3, "untraced": 2, "trimmed": 0}
    entries = lookup(index_path(tmp_path, "recent"), W3C)
    assert [(e.kind, e.time) for e in entries] == [("log", 99.9), ("segment", 100.0), ("log", 100.1)]
    assert entries[1].body == segment("53995c3f42cd8ad8", 100.0)["raw"].decode()
    assert orjson.loads(entries[2].body)["message"] == "paid" and entries[2].name == "/var/log/shop.log"


def test_index_stays_within_its_bound_keeping_the_newest(tmp_path: Path) -> None:
    index = TraceIndex(tmp_path / "i.sqlite", max_bytes=1024 * 1024)
    body = "x" * 1000
    for batch in range(30):
        trace = f"{batch:032x}"
        index.add([Entry(trace, batch + i / 1000, "log", "", body) for i in range(100)])
        assert index.size() <= 1024 * 1024
    assert index.trimmed > 0
    assert lookup(tmp_path / "i.sqlite", f"{29:032x}") and not lookup(tmp_path / "i.sqlite", f"{0:032x}")
    index.close()
    assert (tmp_path / "i.sqlite").stat().st_size <= 1.25 * 1024 * 1024


def test_config_rejects_a_tiny_index() -> None:
    with pytest.raises(ValueError, match="at least 1MiB"):
        TraceIndexConfig(type="trace_index", inputs=["x"], max_bytes="100KiB")


def _config(tmp_path: Path, *names: str) -> Any:
    components = {n: SimpleNamespace(section="outputs", type_name="trace_index") for n in names}
    return SimpleNamespace(data_dir=tmp_path, graph=SimpleNamespace(components=components))


def test_trace_command_text_and_exit_codes(tmp_path: Path) -> None:
    index = TraceIndex(index_path(tmp_path, "recent"), 10 * 1024 * 1024)
    doc = segment("53995c3f42cd8ad8", 1700000000.0, http={"response": {"status": 502}}, fault=True)["raw"].decode()
    sub = orjson.dumps(
        {
            "id": "0c18ebb2c4ab0b42",
            "name": "db",
            "type": "subsegment",
            "parent_id": "53995c3f42cd8ad8",
            "trace_id": XRAY,
            "start_time": 1700000000.1,
            "in_progress": True,
        }
    ).decode()
    index.add(
        [
            Entry(W3C, 1700000000.0, "segment", "checkout", doc),
            Entry(W3C, 1700000000.1, "segment", "db", sub),
            Entry(W3C, 1700000000.2, "log", "/var/log/shop.log", orjson.dumps({"message": "upstream failed"}).decode()),
        ]
    )
    index.close()
    out = io.StringIO()
    args = argparse.Namespace(trace_id=XRAY, format="text")
    assert run_trace_command(args, _config(tmp_path, "recent", "absent"), out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == f"trace {XRAY} ({W3C}): 2 segments, 1 log lines"
    assert lines[1] == "2023-11-14T22:13:20.000Z  segment checkout id=53995c3f42cd8ad8 duration=250.0ms http=502 fault"
    assert lines[2].endswith("subsegment db id=0c18ebb2c4ab0b42 parent=53995c3f42cd8ad8 in_progress")
    assert lines[3].endswith("log [/var/log/shop.log] upstream failed")
    assert (
        run_trace_command(
            argparse.Namespace(trace_id="1-" + "0" * 8 + "-" + "0" * 24, format="text"),
            _config(tmp_path, "recent"),
            io.StringIO(),
        )
        == 1
    )
    assert run_trace_command(argparse.Namespace(trace_id="nope", format="text"), _config(tmp_path), io.StringIO()) == 2
    assert run_trace_command(args, _config(tmp_path), io.StringIO()) == 1  # no trace_index output configured
