"""The `host_metrics` input: CloudWatch agent names, and values that agree with prometheus-node-exporter.

Tolerances for the comparison (the two read the same kernel figures a few milliseconds apart):
totals exactly equal (memory, filesystem sizes); memory available and filesystem free within 64 MiB;
CPU idle share over the same window within 5 percentage points; cumulative network bytes within 1 MiB;
established TCP connections within 5.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from collector.api import HostFacts, InputContext
from collector.events import Batch, Metric
from collector.testing import wait_for, wait_for_sync
from collector_plugins.inputs.host_metrics.collect import Collector, ProcessMatcher
from collector_plugins.inputs.host_metrics.input import HostMetrics, HostMetricsConfig

MiB = 1024 * 1024


def points(metrics: list[Metric]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Metric]:
    return {(m.name, tuple(sorted(m.tags.items()))): m for m in metrics}


def test_groups_names_and_units() -> None:
    collector = Collector(groups=["cpu", "mem", "swap", "disk", "diskio", "net", "netstat", "processes"], per_cpu=True)
    first = collector.collect(1000.0, 10.0)
    assert not [m for m in first if m.name.startswith(("cpu_", "diskio_", "net_"))]  # rates need a baseline
    start = [sum(t) for t in psutil.cpu_times(percpu=True)]
    wait_for_sync(lambda: all(sum(t) > s for t, s in zip(psutil.cpu_times(percpu=True), start, strict=True)))
    out = points(collector.collect(1010.0, 10.0))
    assert collector.errors == 0
    total = out[("cpu_usage_idle", (("cpu", "cpu-total"),))]
    assert total.unit == "Percent" and 0 <= total.value <= 100 and (total.timestamp, total.interval) == (1010.0, 10.0)
    assert ("cpu_usage_active", (("cpu", "cpu0"),)) in out
    shares = [
        out[(f"cpu_usage_{f}", (("cpu", "cpu-total"),))].value
        for f in ("idle", "iowait", "user", "system", "nice", "irq", "softirq", "steal")
    ]
    assert sum(shares) == pytest.approx(100.0)
    assert out[("mem_total", ())].value == psutil.virtual_memory().total
    assert 0 < out[("mem_used_percent", ())].value < 100
    root = [m for m in out.values() if m.name == "disk_used_percent" and m.tags.get("path") == "/"]
    assert root and set(root[0].tags) == {"path", "device", "fstype"}
    assert out[("netstat_tcp_listen", ())].type == "gauge"
    assert out[("processes_total", ())].value >= 1
    assert all(m.type == "counter" for m in out.values() if m.name.startswith(("diskio_", "net_")))


def test_pseudo_filesystems_are_left_out_by_default() -> None:
    config = HostMetricsConfig.model_validate({"type": "host_metrics"})
    assert {"tmpfs", "proc", "overlay", "sysfs"} <= set(config.ignore_fstypes)
    everything = Collector(groups=["disk"]).disk()
    real = Collector(groups=["disk"], ignore_fstypes=frozenset(config.ignore_fstypes)).disk()
    assert {p[2]["fstype"] for p in real}.isdisjoint(config.ignore_fstypes)
    assert len(real) <= len(everything)
    only_root = Collector(groups=["disk"], mount_points=["/"]).disk()
    assert {p[2]["path"] for p in only_root} <= {"/"}


def test_socket_states_from_proc_net(tmp_path: Path) -> None:
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    row = "   0: 0100007F:1F90 00000000:0000 {st} 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
    (tmp_path / "tcp").write_text(header + row.format(st="0A") + row.format(st="01") * 3)
    (tmp_path / "tcp6").write_text(header + row.format(st="06"))
    (tmp_path / "udp").write_text(header + row.format(st="07") * 2)
    out = points(Collector(groups=["netstat"], proc_net=str(tmp_path)).collect(1.0, 60.0))
    assert out[("netstat_tcp_listen", ())].value == 1
    assert out[("netstat_tcp_established", ())].value == 3
    assert out[("netstat_tcp_time_wait", ())].value == 1
    assert out[("netstat_udp_socket", ())].value == 2
    assert out[("netstat_tcp_syn_sent", ())].value == 0


def test_procstat_by_pidfile_name_and_pattern(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = tmp_path / "sleep.pid"
        pidfile.write_text(f"{sleeper.pid}\n")
        matchers = [
            ProcessMatcher("pidfile", str(pidfile)),
            ProcessMatcher("exe", "sleep"),
            ProcessMatcher("pattern", r"^sleep 30$"),
            ProcessMatcher("exe", "no-such-process-here"),
        ]
        collector = Collector(groups=["procstat"], processes=matchers)
        collector.collect(1.0, 10.0)
        out = points(collector.collect(2.0, 10.0))
        by_pidfile = (("pidfile", str(pidfile)), ("process_name", "sleep"))
        assert out[("procstat_pid_count", by_pidfile)].value == 1
        assert out[("procstat_memory_rss", by_pidfile)].value > 0
        assert out[("procstat_cpu_usage", by_pidfile)].value >= 0
        assert out[("procstat_pid_count", (("exe", "sleep"), ("process_name", "sleep")))].value >= 1
        assert out[("procstat_pid_count", (("pattern", "^sleep 30$"), ("process_name", "sleep")))].value >= 1
        missing = (("exe", "no-such-process-here"), ("process_name", "no-such-process-here"))
        assert out[("procstat_pid_count", missing)].value == 0
        assert ("procstat_memory_rss", missing) not in out
    finally:
        sleeper.kill()
        sleeper.wait()


async def test_the_input_emits_on_interval_boundaries(tmp_path: Path) -> None:
    batches: list[Batch] = []

    async def emit(batch: Batch) -> None:
        batches.append(batch)

    config = HostMetricsConfig.model_validate(
        {"type": "host_metrics", "interval": "1s", "collect": ["cpu", "mem"], "processes": [{"exe": "python3"}]}
    )
    ctx = InputContext("host", logging.getLogger("t"), tmp_path, HostFacts("h"), emit, asyncio.Event())
    inp = HostMetrics(config, ctx)
    task = asyncio.create_task(inp.run(ctx))
    await wait_for(lambda: len(batches) >= 2, timeout=5)
    ctx.stopping.set()
    await asyncio.wait_for(task, 5)
    stamps = {m.timestamp for b in batches for m in b.records}
    assert all(s == int(s) for s in stamps)  # whole seconds: the interval's boundaries
    names = {m.name for m in batches[0].records}
    assert "cpu_usage_idle" in names and "mem_used_percent" in names  # rates ready in the first batch
    assert inp.counters()["collections"] >= 2 and inp.counters()["cpu_seconds"] > 0


@pytest.mark.parametrize(
    "options",
    [
        {"interval": "7s"},
        {"collect": ["gpu"]},
        {"processes": [{"exe": "a", "pidfile": "/b"}]},
        {"processes": [{"pattern": "("}]},
    ],
)
def test_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        HostMetricsConfig.model_validate({"type": "host_metrics", **options})


# ----------------------------------------------------------------- against prometheus-node-exporter


def node(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def node_idle_share(before: dict[Any, float], after: dict[Any, float]) -> float:
    def sums(sample: dict[Any, float]) -> tuple[float, float]:
        idle = total = 0.0
        for (name, labels), value in sample.items():
            if name == "node_cpu_seconds_total":
                total += value
                if dict(labels)["mode"] == "idle":
                    idle += value
        return idle, total

    (idle0, total0), (idle1, total1) = sums(before), sums(after)
    return 100.0 * (idle1 - idle0) / (total1 - total0)


def test_agrees_with_node_exporter(node_exporter: int) -> None:
    collector = Collector(groups=["cpu", "mem", "disk", "netstat"], mount_points=["/"])
    before = node(node_exporter)
    collector.collect(0.0, 1.0)
    time.sleep(1.5)  # not a wait: the window both measure CPU use over (shorter, and their rounding differs)
    ours = points(collector.collect(0.0, 1.0))
    after = node(node_exporter)
    net = psutil.net_io_counters(pernic=True)

    assert ours[("mem_total", ())].value == after[("node_memory_MemTotal_bytes", ())]
    assert abs(ours[("mem_available", ())].value - after[("node_memory_MemAvailable_bytes", ())]) < 64 * MiB
    root = next(m.tags for m in ours.values() if m.name == "disk_total")
    device_tags = (("device", f"/dev/{root['device']}"), ("fstype", root["fstype"]), ("mountpoint", "/"))
    assert ours[("disk_total", tuple(sorted(root.items())))].value == after[("node_filesystem_size_bytes", device_tags)]
    free = after[("node_filesystem_avail_bytes", device_tags)]
    assert abs(ours[("disk_free", tuple(sorted(root.items())))].value - free) < 64 * MiB
    idle = ours[("cpu_usage_idle", (("cpu", "cpu-total"),))].value
    assert abs(idle - node_idle_share(before, after)) < 5.0
    for name, counters in net.items():
        key = ("node_network_receive_bytes_total", (("device", name),))
        if key in after:
            assert abs(counters.bytes_recv - after[key]) < MiB
    established = ours[("netstat_tcp_established", ())].value + ours[("netstat_tcp_close_wait", ())].value
    assert abs(established - after[("node_netstat_Tcp_CurrEstab", ())]) <= 5
