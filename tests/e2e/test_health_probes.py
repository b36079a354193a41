"""/healthz reports a component restart loop through the real daemon (the unit tests show it heals)."""

from __future__ import annotations

import json
import signal

from collector.testing import wait_for_sync
from tests.e2e.conftest import Collector

HEAD = """\
data_dir: {data}
api:
  listen: 127.0.0.1:{port}
  health: {{restart_limit: 2, restart_window: 1m}}
shutdown_grace: 2s
inputs:
  gen: {{type: generator, rate: 2000, batch_size: 50}}
"""


def test_a_restart_loop_fails_healthz_not_readyz(collector: Collector) -> None:
    c = collector
    head = HEAD.format(data=c.workdir / "data", port=c.port)
    c.config.write_text(
        head + "processors:\n  flaky: {type: chaos, inputs: [gen], every: 1}\n"
        "outputs:\n  hole: {type: blackhole, inputs: [flaky]}\n"
    )
    c.start()
    wait_for_sync(lambda: c.get("/healthz")[0] == 503, timeout=20)
    body = json.loads(c.get("/healthz")[1])
    assert body["status"] == "unhealthy"
    assert any(
        p.startswith("flaky: restarted") and "restart loop" in p and "chaos on batch" in p for p in body["problems"]
    )
    assert c.get("/readyz")[0] == 200  # the outputs still take data
    status = c.status()
    assert status["healthy"] is False and status["health_problems"] == body["problems"]
    assert c.metric("collector_probe_ok", probe="healthz") == 0

    c.signal(signal.SIGTERM)
    assert c.wait() == 0
