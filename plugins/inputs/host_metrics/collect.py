"""What `host_metrics` reads, with the CloudWatch agent's metric and dimension names.

Each group is one function of `Collector` returning metric records; anything
cumulative in the kernel (CPU time, disk and network I/O) is turned into what
happened since the previous collection, so the first collection of those
groups only sets the baseline. Reading is psutil's, except TCP/UDP socket
states, read from /proc/net/{tcp,tcp6,udp,udp6} directly (psutil would walk
every process's file descriptors to attach pids we do not need).

Names (the CloudWatch agent's, so its dashboards and alarms keep working):
cpu_usage_{idle,iowait,user,system,nice,irq,softirq,steal,guest,guest_nice,active} (`cpu`: cpu-total or
cpuN); mem_{total,used,free,available,cached,buffered,active,inactive} and mem_{used,available}_percent;
swap_{used,free,used_percent}; disk_{total,used,free,used_percent,inodes_total,inodes_used,inodes_free}
(`path`, `device`, `fstype`); diskio_{reads,writes,read_bytes,write_bytes,read_time,write_time,io_time}
(`name`); net_{bytes_sent,bytes_recv,packets_sent,packets_recv,err_in,err_out,drop_in,drop_out}
(`interface`); netstat_tcp_<state> and netstat_udp_socket; processes_{running,sleeping,stopped,zombies,
idle,blocked,dead,total,total_threads}; procstat_{cpu_usage,memory_rss,memory_vms,num_threads,num_fds,
pid_count} (`process_name` and the matcher: `exe`, `pattern` or `pidfile`).
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from collector.events import Metric

# Kernel TCP states (include/net/tcp_states.h) in /proc/net/tcp's `st` column.
TCP_STATES = {
    "01": "established",
    "02": "syn_sent",
    "03": "syn_recv",
    "04": "fin_wait1",
    "05": "fin_wait2",
    "06": "time_wait",
    "07": "close",
    "08": "close_wait",
    "09": "last_ack",
    "0A": "listen",
    "0B": "closing",
}
PROCESS_STATES = {
    psutil.STATUS_RUNNING: "running",
    psutil.STATUS_SLEEPING: "sleeping",
    psutil.STATUS_DISK_SLEEP: "blocked",
    psutil.STATUS_STOPPED: "stopped",
    psutil.STATUS_TRACING_STOP: "stopped",
    psutil.STATUS_ZOMBIE: "zombies",
    psutil.STATUS_DEAD: "dead",
    psutil.STATUS_IDLE: "idle",
}
Point = tuple[str, float, dict[str, str], str | None, str]
"""(name, value, tags, unit, metric type) of one reading."""
CPU_FIELDS = ("idle", "iowait", "user", "system", "nice", "irq", "softirq", "steal", "guest", "guest_nice")


@dataclass(frozen=True)
class ProcessMatcher:
    kind: str  # exe, pattern or pidfile
    value: str

    def find(self) -> list[psutil.Process]:
        if self.kind == "pidfile":
            try:
                with open(self.value, encoding="ascii") as f:
                    return [psutil.Process(int(f.read().strip()))]
            except (OSError, ValueError, psutil.Error):
                return []
        found = []
        regex = re.compile(self.value) if self.kind == "pattern" else None
        for proc in psutil.process_iter(["name", "cmdline"]):
            info = proc.info
            if regex is None:
                if info.get("name") == self.value:
                    found.append(proc)
            elif regex.search(" ".join(info.get("cmdline") or ()) or info.get("name") or ""):
                found.append(proc)
        return found


class Collector:
    """Reads the host; remembers cumulative values between calls. Synchronous (run in a thread)."""

    def __init__(
        self,
        *,
        groups: list[str],
        per_cpu: bool = False,
        ignore_fstypes: frozenset[str] = frozenset(),
        mount_points: list[str] | None = None,
        ignore_devices: list[str] | None = None,
        ignore_interfaces: list[str] | None = None,
        processes: list[ProcessMatcher] | None = None,
        proc_net: str = "/proc/net",
    ) -> None:
        self.groups = groups
        self.per_cpu = per_cpu
        self.ignore_fstypes = ignore_fstypes
        self.mount_points = mount_points
        self.ignore_devices = ignore_devices or []
        self.ignore_interfaces = ignore_interfaces or []
        self.matchers = processes or []
        self.proc_net = proc_net
        self._cpu: dict[str, Any] = {}
        self._diskio: dict[str, Any] = {}
        self._net: dict[str, Any] = {}
        self._proc_cpu: dict[int, tuple[float, float]] = {}
        self.errors = 0
        self.last_error = ""

    def collect(self, now: float, interval: float) -> list[Metric]:
        out: list[Metric] = []
        readers: dict[str, Callable[[], list[Point]]] = {
            "cpu": self.cpu,
            "mem": self.mem,
            "swap": self.swap,
            "disk": self.disk,
            "diskio": self.diskio,
            "net": self.net,
            "netstat": self.netstat,
            "processes": self.processes,
            "procstat": self.procstat,
        }
        for group in self.groups:
            try:
                points = readers[group]()
            except (OSError, psutil.Error, ValueError) as exc:  # one group failing does not stop the others
                self.errors += 1
                self.last_error = f"{group}: {type(exc).__name__}: {exc}"
                continue
            for name, value, tags, unit, kind in points:
                out.append(Metric(name, kind, float(value), tags, now, unit, interval))  # type: ignore[arg-type]
        return out

    # -- groups: each returns (name, value, tags, unit, type) --------------------------------------

    def cpu(self) -> list[Point]:
        times: dict[str, Any] = {"cpu-total": psutil.cpu_times()}
        if self.per_cpu:
            times.update({f"cpu{i}": t for i, t in enumerate(psutil.cpu_times(percpu=True))})
        out: list[Point] = []
        for cpu, now in times.items():
            before, self._cpu[cpu] = self._cpu.get(cpu), now
            if before is None:
                continue
            deltas = {f: max(0.0, getattr(now, f, 0.0) - getattr(before, f, 0.0)) for f in CPU_FIELDS}
            # On Linux user and nice include guest time: counting it once keeps the shares adding up to 100.
            total = sum(v for f, v in deltas.items() if f not in ("guest", "guest_nice"))
            if total <= 0:
                continue
            tags = {"cpu": cpu}
            for field, delta in deltas.items():
                out.append((f"cpu_usage_{field}", 100.0 * delta / total, tags, "Percent", "gauge"))
            out.append(("cpu_usage_active", 100.0 * (total - deltas["idle"]) / total, tags, "Percent", "gauge"))
        return out

    def mem(self) -> list[Point]:
        vm = psutil.virtual_memory()
        used = vm.total - vm.available  # what the CloudWatch agent reports as used (and as the percent)
        values = {
            "mem_total": vm.total,
            "mem_available": vm.available,
            "mem_used": used,
            "mem_free": vm.free,
            "mem_cached": getattr(vm, "cached", 0),
            "mem_buffered": getattr(vm, "buffers", 0),
            "mem_active": getattr(vm, "active", 0),
            "mem_inactive": getattr(vm, "inactive", 0),
        }
        out: list[Point] = [(k, v, {}, "Bytes", "gauge") for k, v in values.items()]
        if vm.total:
            out.append(("mem_used_percent", 100.0 * used / vm.total, {}, "Percent", "gauge"))
            out.append(("mem_available_percent", 100.0 * vm.available / vm.total, {}, "Percent", "gauge"))
        return out

    def swap(self) -> list[Point]:
        sw = psutil.swap_memory()
        return [
            ("swap_used", sw.used, {}, "Bytes", "gauge"),
            ("swap_free", sw.free, {}, "Bytes", "gauge"),
            ("swap_used_percent", sw.percent, {}, "Percent", "gauge"),
        ]

    def disk(self) -> list[Point]:
        out: list[Point] = []
        for part in psutil.disk_partitions(all=False):
            if part.fstype in self.ignore_fstypes or (
                self.mount_points is not None and part.mountpoint not in self.mount_points
            ):
                continue
            try:
                st = os.statvfs(part.mountpoint)
            except OSError:
                continue  # unmounted meanwhile, or not ours to read
            total = st.f_blocks * st.f_frsize
            free = st.f_bavail * st.f_frsize  # what non-root users can still write, as `df` and the agent show
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            tags = {"path": part.mountpoint, "device": os.path.basename(part.device), "fstype": part.fstype}
            out += [
                ("disk_total", total, tags, "Bytes", "gauge"),
                ("disk_free", free, tags, "Bytes", "gauge"),
                ("disk_used", used, tags, "Bytes", "gauge"),
            ]
            if used + free:
                out.append(("disk_used_percent", 100.0 * used / (used + free), tags, "Percent", "gauge"))
            if st.f_files:
                out += [
                    ("disk_inodes_total", st.f_files, tags, None, "gauge"),
                    ("disk_inodes_free", st.f_ffree, tags, None, "gauge"),
                    ("disk_inodes_used", st.f_files - st.f_ffree, tags, None, "gauge"),
                ]
        return out

    def diskio(self) -> list[Point]:
        counters = psutil.disk_io_counters(perdisk=True) or {}
        fields = {
            "reads": ("read_count", None),
            "writes": ("write_count", None),
            "read_bytes": ("read_bytes", "Bytes"),
            "write_bytes": ("write_bytes", "Bytes"),
            "read_time": ("read_time", "Milliseconds"),
            "write_time": ("write_time", "Milliseconds"),
            "io_time": ("busy_time", "Milliseconds"),
        }
        return self._increases(
            "diskio",
            "name",
            {k: v for k, v in counters.items() if not _ignored(k, self.ignore_devices)},
            self._diskio,
            fields,
        )

    def net(self) -> list[Point]:
        counters = psutil.net_io_counters(pernic=True) or {}
        fields = {
            "bytes_sent": ("bytes_sent", "Bytes"),
            "bytes_recv": ("bytes_recv", "Bytes"),
            "packets_sent": ("packets_sent", None),
            "packets_recv": ("packets_recv", None),
            "err_in": ("errin", None),
            "err_out": ("errout", None),
            "drop_in": ("dropin", None),
            "drop_out": ("dropout", None),
        }
        return self._increases(
            "net",
            "interface",
            {k: v for k, v in counters.items() if not _ignored(k, self.ignore_interfaces)},
            self._net,
            fields,
        )

    @staticmethod
    def _increases(
        prefix: str, tag: str, counters: dict[str, Any], state: dict[str, Any], fields: dict[str, tuple[str, Any]]
    ) -> list[Point]:
        out: list[Point] = []
        for name, now in counters.items():
            before, state[name] = state.get(name), now
            if before is None:
                continue
            tags = {tag: name}
            for metric, (attr, unit) in fields.items():
                value, old = getattr(now, attr, 0), getattr(before, attr, 0)
                # A counter that went backwards wrapped or was reset (a device re-attached): take it from zero.
                out.append((f"{prefix}_{metric}", value - old if value >= old else value, tags, unit, "counter"))
        for gone in set(state) - set(counters):
            del state[gone]
        return out

    def netstat(self) -> list[Point]:
        counts = dict.fromkeys(TCP_STATES.values(), 0)
        for name in ("tcp", "tcp6"):
            for state in _socket_states(os.path.join(self.proc_net, name)):
                label = TCP_STATES.get(state)
                if label is not None:
                    counts[label] += 1
        udp = sum(1 for name in ("udp", "udp6") for _ in _socket_states(os.path.join(self.proc_net, name)))
        out: list[Point] = [(f"netstat_tcp_{state}", count, {}, "Count", "gauge") for state, count in counts.items()]
        out.append(("netstat_udp_socket", udp, {}, "Count", "gauge"))
        return out

    def processes(self) -> list[Point]:
        counts = dict.fromkeys(("running", "sleeping", "blocked", "stopped", "zombies", "dead", "idle"), 0)
        threads = total = 0
        for proc in psutil.process_iter(["status", "num_threads"]):
            total += 1
            threads += proc.info.get("num_threads") or 0
            state = PROCESS_STATES.get(proc.info.get("status") or "")
            if state is not None:
                counts[state] += 1
        out: list[Point] = [(f"processes_{k}", v, {}, None, "gauge") for k, v in counts.items()]
        out += [("processes_total", total, {}, None, "gauge"), ("processes_total_threads", threads, {}, None, "gauge")]
        return out

    def procstat(self) -> list[Point]:
        out: list[Point] = []
        now = time.monotonic()
        seen: set[int] = set()
        for matcher in self.matchers:
            rss = vms = threads = fds = cpu = 0.0
            names: set[str] = set()
            found = 0
            for proc in matcher.find():
                try:
                    with proc.oneshot():
                        mem = proc.memory_info()
                        times = proc.cpu_times()
                        rss += mem.rss
                        vms += mem.vms
                        threads += proc.num_threads()
                        try:
                            fds += proc.num_fds()
                        except psutil.AccessDenied:
                            pass
                        names.add(proc.name())
                except psutil.Error:
                    continue  # exited meanwhile
                found += 1
                seen.add(proc.pid)
                spent = times.user + times.system
                before = self._proc_cpu.get(proc.pid)
                self._proc_cpu[proc.pid] = (now, spent)
                if before is not None and now > before[0]:
                    cpu += 100.0 * max(0.0, spent - before[1]) / (now - before[0])
            tags = {matcher.kind: matcher.value, "process_name": ",".join(sorted(names)) or matcher.value}
            out.append(("procstat_pid_count", found, tags, "Count", "gauge"))
            if found:
                out += [
                    ("procstat_cpu_usage", cpu, tags, "Percent", "gauge"),
                    ("procstat_memory_rss", rss, tags, "Bytes", "gauge"),
                    ("procstat_memory_vms", vms, tags, "Bytes", "gauge"),
                    ("procstat_num_threads", threads, tags, None, "gauge"),
                    ("procstat_num_fds", fds, tags, None, "gauge"),
                ]
        self._proc_cpu = {pid: v for pid, v in self._proc_cpu.items() if pid in seen}
        return out


def _ignored(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _socket_states(path: str) -> list[str]:
    """The `st` column of a /proc/net/{tcp,udp}[6] table (hex state codes); [] when the table is absent."""
    try:
        with open(path, encoding="ascii") as f:
            next(f, None)  # the header
            return [line.split()[3] for line in f if line.strip()]
    except OSError:
        return []
