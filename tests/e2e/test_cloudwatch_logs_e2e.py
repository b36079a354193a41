"""The collector as a process: tailed files -> `cloudwatch_logs` on the moto server, through faults.

Credentials reach the collector only through the standard chain (the dummy
environment credentials of tests/conftest.py); a fault proxy between the
collector and moto throttles and fails some PutLogEvents calls. Read back with
GetLogEvents: every line of every file, in order per stream, exactly once, and
a bounded number of calls.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from collector.testing import wait_for_sync
from tests.aws_faults import FaultProxy
from tests.e2e.conftest import Collector
from tests.moto import MotoServer

GROUP = "/e2e/app"
LINES = 2000


def read_stream(moto: MotoServer, stream: str) -> list[str]:
    logs = moto.client("logs")
    out: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"logGroupName": GROUP, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        page = logs.get_log_events(**kwargs)
        out += [e["message"] for e in page["events"]]
        if not page["events"] or page["nextForwardToken"] == token:
            return out
        token = page["nextForwardToken"]


def streams(moto: MotoServer) -> list[str]:
    try:
        found = moto.client("logs").describe_log_streams(logGroupName=GROUP)["logStreams"]
    except moto.client("logs").exceptions.ResourceNotFoundException:
        return []
    return sorted(s["logStreamName"] for s in found)


def test_tailed_files_arrive_in_cloudwatch_logs_every_line_in_order(
    collector: Collector, moto: MotoServer, tmp_path: Path
) -> None:
    logs_dir = tmp_path / "logs"
    logs_dir.mkdir()
    files = {name: logs_dir / f"{name}.log" for name in ("web", "worker")}
    for name, path in files.items():
        path.write_text("".join(f"{name} line {i:05d} ünïcode\n" for i in range(LINES // 2)))

    with FaultProxy(moto.endpoint_url) as proxy:
        proxy.fail_next(2, "throttle", match="PutLogEvents")
        proxy.fail_next(1, "5xx", match="PutLogEvents")
        collector.write_config(
            f"""\
inputs:
  app:
    type: file
    include: ["{logs_dir}/*.log"]
    read_from: beginning
outputs:
  cwl:
    type: cloudwatch_logs
    inputs: [app]
    log_group: {GROUP}
    log_stream: "{{host}}/{{file}}"
    region: eu-west-1
    endpoint_url: {proxy.url}
    retention_days: 7
    batch: {{timeout: 200ms}}
    retry: {{initial_backoff: 50ms, max_backoff: 200ms}}
"""
        )
        collector.start()
        # Lines appended while the collector runs are tailed too.
        for name, path in files.items():
            with path.open("a") as f:
                f.write("".join(f"{name} line {i:05d} ünïcode\n" for i in range(LINES // 2, LINES)))

        def all_arrived() -> bool:
            found = streams(moto)
            return len(found) == 2 and all(len(read_stream(moto, s)) >= LINES for s in found)

        wait_for_sync(all_arrived, timeout=30, interval=0.3)
        collector.signal(signal.SIGTERM)
        assert collector.wait() == 0

        assert proxy.faults == 3
        # No retry storm: far fewer calls than lines, each fault cost one resend.
        assert proxy.count("PutLogEvents") <= 40

    by_file = {s.rsplit("/", 1)[-1]: s for s in streams(moto)}
    assert set(by_file) == {"web.log", "worker.log"}
    for name in files:
        assert read_stream(moto, by_file[f"{name}.log"]) == [f"{name} line {i:05d} ünïcode" for i in range(LINES)]
    group = moto.client("logs").describe_log_groups(logGroupNamePrefix=GROUP)["logGroups"][0]
    assert group["retentionInDays"] == 7
    assert "request failed; retrying" in collector.stderr()


def test_generated_lines_in_order(collector: Collector, moto: MotoServer) -> None:
    collector.write_config(
        f"""\
inputs:
  gen:
    type: generator
    lines: ["alpha", "beta", "gamma"]
    count: 300
outputs:
  cwl:
    type: cloudwatch_logs
    inputs: [gen]
    log_group: {GROUP}
    log_stream: generated
    region: eu-west-1
    endpoint_url: {moto.endpoint_url}
    batch: {{timeout: 100ms}}
"""
    )
    # All inputs finish (count): the collector drains its output and exits on its own.
    collector.start(wait_ready=False)
    assert collector.wait(timeout=30) == 0, collector.stderr()
    assert read_stream(moto, "generated") == ["alpha", "beta", "gamma"] * 100
