"""`host_metrics` input: the node's CPU, memory, swap, disks, disk I/O, network, sockets and processes.

Every `interval` (on the interval's boundaries, like the other metric inputs)
one collection runs in a worker thread (psutil reads /proc and statvfs, which
may block briefly) and its points go downstream in one batch, named like the
CloudWatch agent's (`collect.py`). Rates and shares (CPU usage,
I/O and network counters) cover the time since the previous collection, so the
first collection of those groups only sets the baseline.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.api import ComponentContext, Input, InputConfig, InputContext
from collector.config.messages import HINT_SEPARATOR
from collector.events import METRICS
from collector.log import RepeatLimiter, kv
from collector.units import Duration
from collector_plugins.common.metrics.aggregator import check_interval
from collector_plugins.common.metrics.batch import metric_batch

if TYPE_CHECKING:
    # Imported where used at run time: collect.py imports psutil, which loading the registry should not.
    from collector_plugins.inputs.host_metrics.collect import ProcessMatcher

Group = Literal["cpu", "mem", "swap", "disk", "diskio", "net", "netstat", "processes"]
GROUPS: tuple[Group, ...] = ("cpu", "mem", "swap", "disk", "diskio", "net", "netstat", "processes")
# Filesystems that hold no data of their own (kernel interfaces, memory, images, container layers).
PSEUDO_FSTYPES = (
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.lxcfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "aufs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "iso9660",
)


class ProcessSelector(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    exe: str | None = Field(None, description="Processes with exactly this name.", examples=["nginx"])
    pattern: str | None = Field(
        None, description="A regular expression over the command line.", examples=["java .*kafka"]
    )
    pidfile: str | None = Field(None, description="The process whose pid this file holds.", examples=["/run/sshd.pid"])

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one(self) -> ProcessSelector:
        given = [k for k in ("exe", "pattern", "pidfile") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of exe, pattern, pidfile{HINT_SEPARATOR}one selector per list item")
        return self

    def matcher(self) -> ProcessMatcher:
        from collector_plugins.inputs.host_metrics.collect import ProcessMatcher

        kind = next(k for k in ("exe", "pattern", "pidfile") if getattr(self, k) is not None)
        return ProcessMatcher(kind, getattr(self, kind))


class HostMetricsConfig(InputConfig):
    type: Literal["host_metrics"] = Field(description="Collects the host's metrics.", examples=["host_metrics"])
    interval: Duration = Field(
        60.0,
        description="Collection interval (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 s or whole minutes).",
        examples=["60s", "10s"],
    )
    collect: list[Group] = Field(
        default_factory=lambda: list(GROUPS),
        min_length=1,
        description="Which groups to collect.",
        examples=[["cpu", "mem", "disk"]],
    )
    per_cpu: bool = Field(False, description="Also report each CPU (`cpu`: cpu0, cpu1, ...).", examples=[True])
    ignore_fstypes: list[str] = Field(
        default_factory=lambda: list(PSEUDO_FSTYPES),
        description="Filesystem types left out of `disk` (default: pseudo and in-memory filesystems).",
        examples=[["tmpfs", "overlay"]],
    )
    mount_points: list[str] | None = Field(
        None, description="Only these mount points in `disk`; null: every real filesystem.", examples=[["/", "/data"]]
    )
    ignore_devices: list[str] = Field(
        default_factory=lambda: ["loop*", "ram*"],
        description="Block devices (glob patterns) left out of `diskio`.",
        examples=[["loop*", "ram*"]],
    )
    ignore_interfaces: list[str] = Field(
        default_factory=lambda: ["lo"],
        description="Network interfaces (glob patterns) left out of `net`.",
        examples=[["lo", "veth*"]],
    )
    processes: list[ProcessSelector] = Field(
        default_factory=list,
        description="Processes to report `procstat_*` for, by `exe` name, command-line `pattern` or `pidfile`.",
        examples=[[{"exe": "nginx"}, {"pattern": "java .*kafka"}, {"pidfile": "/run/sshd.pid"}]],
    )

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        return check_interval(value)


class HostMetrics(Input):
    type_name: ClassVar[str] = "host_metrics"
    description: ClassVar[str] = (
        "The host's CPU, memory, disk, network and process metrics, named like the CloudWatch agent's."
    )
    Config: ClassVar[type[HostMetricsConfig]] = HostMetricsConfig
    emits: ClassVar[frozenset[str]] = frozenset((METRICS,))

    config: HostMetricsConfig

    def __init__(self, config: HostMetricsConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        from collector_plugins.inputs.host_metrics.collect import Collector

        groups: list[str] = list(dict.fromkeys(config.collect))
        if config.processes:
            groups.append("procstat")
        self.collector = Collector(
            groups=groups,
            per_cpu=config.per_cpu,
            ignore_fstypes=frozenset(config.ignore_fstypes),
            mount_points=config.mount_points,
            ignore_devices=config.ignore_devices,
            ignore_interfaces=config.ignore_interfaces,
            processes=[p.matcher() for p in config.processes],
        )
        self._limiter = RepeatLimiter(interval=300.0)
        self.collections = 0
        self.cpu_seconds = 0.0
        """CPU time spent collecting (this input's own cost)."""

    def counters(self) -> dict[str, float]:
        return {"collections": self.collections, "errors": self.collector.errors, "cpu_seconds": self.cpu_seconds}

    async def run(self, ctx: InputContext) -> None:
        interval = self.config.interval
        # The baseline for rates, at once: the first emission then already has CPU usage and I/O figures.
        await asyncio.to_thread(self.collector.collect, time.time(), interval)
        while True:
            wake = math.floor(time.time() / interval) * interval + interval
            if await ctx.sleep(max(0.0, wake - time.time())):
                return
            await self.collect_once(ctx, wake)

    async def collect_once(self, ctx: InputContext, stamp: float) -> None:
        errors = self.collector.errors
        points, spent = await asyncio.to_thread(_timed, self.collector.collect, stamp, self.config.interval)
        self.cpu_seconds += spent
        self.collections += 1
        if self.collector.errors != errors:
            now, _, suppressed = self._limiter.check(self.collector.last_error.partition(":")[0])
            if now:
                self.log.warning(
                    "a host metrics group could not be read",
                    extra=kv(component=self.ctx.name, error=self.collector.last_error, repeats_suppressed=suppressed),
                )
        if points:
            await ctx.emit(metric_batch(points))


def _timed(collect: Any, stamp: float, interval: float) -> tuple[Any, float]:
    """`collect(...)` and the CPU time the calling thread spent in it."""
    started = time.thread_time()
    points = collect(stamp, interval)
    return points, time.thread_time() - started
