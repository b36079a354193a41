from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from collector.events import LOGS, Batch
from collector.http import ApiServer
from collector.stats import ComponentStats, RuntimeCollector, make_registry


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
