"""The installed collector's `otlp` input: kill -9 while an OTLP/HTTP client sends; after a restart, every span
the client was answered 200 for is in the file output (disk buffer, fsync always)."""

from __future__ import annotations

import random
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.testing import free_port, wait_for_sync
from tests.e2e.conftest import Collector, json_lines


def request_body(batch: int, size: int) -> bytes:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for i in range(size):
        spans.add(
            trace_id=(batch + 1).to_bytes(16, "big"),  # never all zero (an invalid span)
            span_id=(i + 1).to_bytes(8, "big"),
            name=f"b{batch}-s{i}",
            start_time_unix_nano=1,
            end_time_unix_nano=2,
        )
    return request.SerializeToString()


KILLS = 3


def written(path: Path) -> set[str]:
    return {span["name"] for span in json_lines(path, torn_at_most=KILLS)}


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_span(collector: Collector) -> None:
    http_port = free_port()
    out = collector.workdir / "spans.jsonl"
    collector.write_config(
        f"""\
inputs:
  otel: {{type: otlp, grpc_listen: null, http_listen: "127.0.0.1:{http_port}"}}
outputs:
  spans:
    type: file
    inputs: [otel]
    path: {out}
    buffer: {{type: disk, max_bytes: 64MiB, fsync: always}}
"""
    )
    acknowledged: set[str] = set()
    stop = threading.Event()
    size = 20

    def client() -> None:
        batch = 0
        while not stop.is_set():
            body = request_body(batch, size)
            request = urllib.request.Request(
                f"http://127.0.0.1:{http_port}/v1/traces",
                data=body,
                headers={"Content-Type": "application/x-protobuf"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as r:
                    if r.status == 200:
                        acknowledged.update(f"b{batch}-s{i}" for i in range(size))
                        batch += 1
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.02)  # the collector is down: the client keeps the batch and sends it again

    rnd = random.Random()
    thread = threading.Thread(target=client, daemon=True)
    collector.start()
    thread.start()
    try:
        for _ in range(KILLS):
            before = len(acknowledged)
            wait_for_sync(lambda before=before: len(acknowledged) > before + 100, timeout=20)
            time.sleep(rnd.uniform(0.05, 0.4))  # not a wait: a random moment to kill at
            collector.signal(signal.SIGKILL)
            collector.wait()
            collector.start()
        before = len(acknowledged)
        wait_for_sync(lambda: len(acknowledged) > before + 100, timeout=20)
    finally:
        stop.set()
        thread.join(15)
    expected = set(acknowledged)
    try:
        wait_for_sync(lambda: expected <= written(out), timeout=30)
    except TimeoutError:
        pass
    missing = expected - written(out)
    assert not missing, (len(missing), sorted(missing)[:10], len(written(out)), collector.stderr()[-3000:])
    assert len(expected) > 400
