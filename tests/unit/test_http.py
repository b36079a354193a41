from __future__ import annotations

import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.accepting import HTTP_SHUTDOWN_TIMEOUT as SHUTDOWN_TIMEOUT
from collector.buffer.base import BufferCondition
from collector.events import LOGS, Batch
from collector.health import HealthPolicy, liveness_problems, readiness_problems
from collector.http import ApiServer
from collector.stats import ComponentStats, RuntimeCollector, make_registry
from tests.descriptors import left_open_by_stop


async def test_endpoints() -> None:
    st = ComponentStats("out", "outputs", "file")
    st.state = "running"
    st.received(Batch(LOGS, [{}] * 3, nbytes=30))
    st.drop("shutdown_timeout", 2)
    registry = make_registry(RuntimeCollector(lambda: [st], lambda: {"success": 1, "failure": 0}))
    ready = [False]
    server = ApiServer(registry, lambda: {"components": [{"name": "out"}]}, lambda: (ready[0], "starting"))
    await server.start("127.0.0.1", 0)
    assert server.bound is not None
    base = f"http://127.0.0.1:{server.bound[1]}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/healthz") as r:
                assert r.status == 200
            async with session.get(base + "/readyz") as r:
                assert r.status == 503 and (await r.json())["reason"] == "starting"
            ready[0] = True
            async with session.get(base + "/readyz") as r:
                assert r.status == 200
            async with session.get(base + "/status") as r:
                body = await r.json()
                assert body["components"] == [{"name": "out"}] and body["time"] > 0
            async with session.get(base + "/metrics") as r:
                text = await r.text()
    finally:
        await server.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    labels = (("component", "out"), ("component_type", "file"), ("section", "outputs"))
    assert samples[("collector_component_received_events_total", labels)] == 3
    assert samples[("collector_component_received_bytes_total", labels)] == 30
    assert (
        samples[("collector_component_dropped_events_total", (*labels[:2], ("reason", "shutdown_timeout"), labels[2]))]
        == 2
    )
    assert samples[("collector_component_up", labels)] == 1
    assert samples[("collector_config_reloads_total", (("result", "success"),))] == 1


async def test_healthz_and_readyz_say_why_and_metrics_show_the_condition(tmp_path: Path) -> None:
    st = ComponentStats("out", "outputs", "gate")
    st.state = "running"
    since = time.monotonic() - 12
    st.buffer = lambda: {"events": 0.0, "bytes": 10.0, "write_errors": 7.0, "fsync_errors": 0.0, "ledger_errors": 2.0}
    st.buffer_type = "disk"
    st.buffer_condition = lambda: BufferCondition(False, "write_failing", since, "ENOSPC: No space left on device")
    inp = ComponentStats("in", "inputs", "file")
    inp.checkpoint_failed(OSError(28, "No space left on device"))
    policy = HealthPolicy(wedged_after=10.0)

    def liveness() -> tuple[bool, list[str]]:
        problems = liveness_problems([st, inp], policy)
        return not problems, problems

    def readiness() -> tuple[bool, str]:
        problems = readiness_problems([st, inp], policy)
        return not problems, "; ".join(problems)

    registry = make_registry(
        RuntimeCollector(lambda: [st, inp], dict, lambda: {"healthz": liveness()[0], "readyz": readiness()[0]})
    )
    server = ApiServer(registry, dict, readiness, liveness)
    await server.start("127.0.0.1", 0)
    assert server.bound is not None
    base = f"http://127.0.0.1:{server.bound[1]}"
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(base + "/healthz") as r:
                body = await r.json()
                assert r.status == 503 and body["status"] == "unhealthy"
                assert body["problems"][0].startswith("out: buffer wedged: refusing data (disk buffer cannot write")
            async with session.get(base + "/readyz") as r:
                body = await r.json()
                assert r.status == 503 and body["reason"].startswith("out: cannot accept data: disk buffer cannot")
            async with session.get(base + "/metrics") as r:
                text = await r.text()
    finally:
        await server.stop()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    buf = (("buffer_type", "disk"), ("component", "out"))
    assert samples[("collector_buffer_accepting", (*buf, ("condition", "write_failing")))] == 0
    assert samples[("collector_buffer_blocked_seconds", buf)] >= 12
    assert samples[("collector_buffer_disk_errors_total", (*buf, ("operation", "write")))] == 7
    assert samples[("collector_buffer_disk_errors_total", (*buf, ("operation", "ledger")))] == 2
    in_labels = (("component", "in"), ("component_type", "file"), ("section", "inputs"))
    assert samples[("collector_component_checkpoint_failures_total", in_labels)] == 1
    assert samples[("collector_probe_ok", (("probe", "healthz"),))] == 0
    assert samples[("collector_probe_ok", (("probe", "readyz"),))] == 0


@pytest.mark.parametrize("turns", range(4))
async def test_stop_closes_the_connections_being_accepted_and_returns_in_time(turns: int) -> None:
    # asyncio 3.11 leaves a socket accepted just before its server closes open and unowned (collector/accepting.py).
    server = ApiServer(make_registry(RuntimeCollector(list, dict)), dict, lambda: (True, ""))
    await server.start("127.0.0.1", 0)
    assert server.bound is not None
    started = time.monotonic()
    leftover = await left_open_by_stop(server.bound[1], server.stop, turns)
    assert time.monotonic() - started < SHUTDOWN_TIMEOUT + 2  # aiohttp's default (60 s) held uvloop's here
    assert leftover == set(), f"accepted sockets still open after stop(): {leftover}"
