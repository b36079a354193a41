"""Start-up applies the whole graph before any component runs (issue 13: the start-up race).

An s3 output listed before a cloudwatch_logs output used to start its delivery
loop while the runtime was still awaiting the second output's buffer, before
`Runtime.graph` held the new graph: the loop's lookup raised `KeyError`, the
traceback was logged and the output restarted, every time.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from collector.testing import wait_for_sync
from tests.e2e.conftest import Collector
from tests.moto import MotoServer

pytestmark = pytest.mark.slow

BUCKET = "e2e-startup-order"


def test_s3_output_before_cloudwatch_logs_starts_without_a_restart(
    collector: Collector, moto: MotoServer, tmp_path: Path
) -> None:
    moto.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": moto.region})
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("".join(f"line {i}\n" for i in range(50)))
    # Disk buffers make opening each output's buffer await, which is where the old order let the
    # first output's loop run against the old (empty) graph.
    collector.write_config(
        f"""
inputs:
  app: {{type: file, include: ["{logs}/*.log"], read_from: beginning}}
outputs:
  archive:
    type: s3
    inputs: [app]
    bucket: {BUCKET}
    region: {moto.region}
    endpoint_url: {moto.endpoint_url}
    buffer: {{type: disk, max_bytes: 64MiB}}
    batch: {{timeout: 200ms}}
  cwl:
    type: cloudwatch_logs
    inputs: [app]
    log_group: /e2e/startup-order
    region: {moto.region}
    endpoint_url: {moto.endpoint_url}
    buffer: {{type: disk, max_bytes: 64MiB}}
    batch: {{timeout: 200ms}}
"""
    )
    collector.start()
    wait_for_sync(lambda: collector.component("cwl")["sent_events"] >= 50, timeout=20)
    wait_for_sync(lambda: collector.component("archive")["sent_events"] >= 50, timeout=20)
    for name in ("archive", "cwl"):
        component = collector.component(name)
        assert component["restarts"] == 0, component
        assert component["errors"] == 0, component
        assert component["last_error"] is None, component
    collector.signal(signal.SIGTERM)
    assert collector.wait(20) == 0
    log = collector.stderr()
    assert "Traceback" not in log, log
    assert "KeyError" not in log, log
    assert "restarting" not in log, log
