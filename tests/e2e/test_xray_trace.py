"""Traces tied to logs, end to end: `collector run` as a process, the real aws-xray-sdk, moto for X-Ray and Logs.

An instrumented app handles requests: each sends its segment (with subsegments)
over UDP and writes log lines carrying its `X-Amzn-Trace-Id` header to a file.
The collector forwards the segments to X-Ray, tags each log line with its trace
id (`trace_context`) on the way to CloudWatch Logs, and indexes both locally;
`collector trace` then shows one request's segments and lines together.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_xray_sdk.core import AWSXRayRecorder
from aws_xray_sdk.core.sampling.local.sampler import LocalSampler

from collector.testing import free_port, wait_for_sync
from tests.e2e.conftest import Collector, cli
from tests.moto import MotoServer


@contextlib.contextmanager
def app_recorder(port: int) -> Iterator[AWSXRayRecorder]:
    xray = AWSXRayRecorder()
    xray.configure(daemon_address=f"127.0.0.1:{port}", sampling=False, context_missing="LOG_ERROR", service="shop")
    xray.sampler = LocalSampler()
    try:
        yield xray
    finally:
        xray.emitter._socket.close()


def handle_requests(xray: AWSXRayRecorder, log_file: Path, count: int) -> dict[str, list[str]]:
    """Serve `count` requests; returns trace id -> the log lines written for it."""
    lines: dict[str, list[str]] = {}
    with log_file.open("a", encoding="utf-8") as log:
        for n in range(count):
            segment = xray.begin_segment("checkout")
            header = f"Root={segment.trace_id};Parent={segment.id};Sampled=1"
            written = [
                f"INFO  [{header}] order {n} received",
                f"DEBUG [{header}] cart {n} loaded",
                f"WARN  [{header}] payment for order {n} retried",
            ]
            with xray.in_subsegment("load-cart"):
                log.write(written[0] + "\n" + written[1] + "\n")
            with xray.in_subsegment("charge"):
                log.write(written[2] + "\n")
            log.write(f"INFO  background job {n} without a request\n")
            log.flush()
            xray.end_segment()
            lines[segment.trace_id] = written
            time.sleep(0.002)  # not a wait: the app's pace
    return lines


@pytest.mark.slow
def test_segments_and_log_lines_of_a_request_travel_and_show_together(
    collector: Collector, moto: MotoServer, tmp_path: Path
) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    udp = free_port(socket.SOCK_DGRAM)
    aws = f"region: {moto.region}, endpoint_url: {moto.endpoint_url}"
    collector.write_config(
        f"""
inputs:
  xray: {{type: xray, listen: "udp:127.0.0.1:{udp} tcp:127.0.0.1:{free_port()}", sampling_proxy: false}}
  app: {{type: file, include: ["{app_dir}/*.log"], read_from: beginning}}
processors:
  app_traced: {{type: trace_context, inputs: [app]}}
outputs:
  traces: {{type: xray, inputs: [xray], {aws}, buffer: {{type: disk, max_bytes: 64MiB}}}}
  cwl: {{type: cloudwatch_logs, inputs: [app_traced], log_group: /e2e/shop, log_stream: app, codec: json, {aws}}}
  recent: {{type: trace_index, inputs: [xray, app_traced]}}
"""
    )
    collector.start()
    with app_recorder(udp) as xray:
        requests = handle_requests(xray, app_dir / "shop.log", 10)

    # Every segment reached X-Ray.
    client = moto.client("xray")

    def traces_stored() -> int:
        ids = sorted(requests)
        return sum(len(client.batch_get_traces(TraceIds=ids[i : i + 5])["Traces"]) for i in range(0, len(ids), 5))

    wait_for_sync(lambda: traces_stored() == len(requests), timeout=20)

    # Every log line reached CloudWatch Logs, each request's lines with that request's trace id.
    logs = moto.client("logs")

    def events() -> list[dict]:
        try:
            found = logs.get_log_events(logGroupName="/e2e/shop", logStreamName="app", startFromHead=True)
        except logs.exceptions.ResourceNotFoundException:
            return []
        return [json.loads(e["message"]) for e in found["events"]]

    wait_for_sync(lambda: len(events()) == 40, timeout=20)
    delivered = events()
    for trace_id, lines in requests.items():
        tagged = [e for e in delivered if e.get("xray_trace_id") == trace_id]
        assert [e["message"] for e in tagged] == lines
        assert all(e["trace_id"] == trace_id[2:10] + trace_id[11:] for e in tagged)
    assert sum(1 for e in delivered if "trace_id" not in e) == 10  # the background lines carry none

    # `collector trace` shows one request: its segment and its lines, in time order.
    trace_id = sorted(requests)[3]
    wait_for_sync(lambda: collector.component("recent")["sent_events"] >= 30, timeout=20)
    shown = cli("trace", trace_id, "-c", str(collector.config), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    entries = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [e["kind"] for e in entries].count("segment") == 1
    assert [e["record"]["message"] for e in entries if e["kind"] == "log"] == requests[trace_id]
    assert [e["time"] for e in entries] == sorted(e["time"] for e in entries)
    # The W3C form: the X-Ray id without its "1-" version prefix and dashes (replacing every "1-" would also eat
    # one that ends the time part, as in 1-6b14ddb1-...).
    w3c = trace_id.removeprefix("1-").replace("-", "")
    text = cli("trace", w3c, "-c", str(collector.config))
    assert text.returncode == 0 and "segment checkout" in text.stdout and "payment for order" in text.stdout
    assert cli("trace", "1-00000000-000000000000000000000000", "-c", str(collector.config)).returncode == 1
    assert cli("trace", "not-a-trace", "-c", str(collector.config)).returncode == 2
