"""`blackhole`: count and discard everything; the sink of benchmarks and dry runs."""

from __future__ import annotations

import time
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import KINDS, Batch
from collector.log import kv
from collector.units import Duration


class BlackholeConfig(OutputConfig):
    type: Literal["blackhole"] = Field(description="Counts and discards records.", examples=["blackhole"])
    print_interval: Duration | None = Field(
        default=None,
        description="Log a throughput line (INFO) at most this often while data flows; null logs nothing.",
        examples=["10s", None],
    )

    @field_validator("print_interval")
    @classmethod
    def _check_interval(cls, value: float | None) -> float | None:
        if value is not None and value <= 0:
            raise ValueError("print_interval must be greater than 0 (or null to disable)")
        return value


class Blackhole(Output):
    type_name: ClassVar[str] = "blackhole"
    description: ClassVar[str] = "Counts and discards every record, optionally logging the throughput."
    Config: ClassVar[type[BlackholeConfig]] = BlackholeConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)

    config: BlackholeConfig

    def __init__(self, config: BlackholeConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.events = 0
        """Records received so far."""
        self.bytes = 0
        """Sum of the received batches' `nbytes` (the producers' payload estimate)."""
        self.batches = 0
        self._interval = config.print_interval
        now = time.monotonic()
        self._started = now
        self._last_report = (now, 0, 0)
        self._next_report = now + self._interval if self._interval is not None else float("inf")

    async def write(self, batch: Batch) -> None:
        self.events += len(batch.records)
        self.bytes += batch.nbytes
        self.batches += 1
        if self._interval is not None:
            now = time.monotonic()
            if now >= self._next_report:
                self._report(now)

    def _report(self, now: float) -> None:
        last_time, last_events, last_bytes = self._last_report
        elapsed = max(now - last_time, 1e-9)
        self.log.info(
            "blackhole throughput",
            extra=kv(
                component=self.ctx.name,
                events=self.events,
                bytes=self.bytes,
                events_per_sec=round((self.events - last_events) / elapsed),
                bytes_per_sec=round((self.bytes - last_bytes) / elapsed),
                interval_s=round(elapsed, 1),
            ),
        )
        self._last_report = (now, self.events, self.bytes)
        self._next_report = now + (self._interval or 0.0)

    async def stop(self) -> None:
        if self._interval is not None and self.events:
            elapsed = max(time.monotonic() - self._started, 1e-9)
            self.log.info(
                "blackhole totals",
                extra=kv(
                    component=self.ctx.name,
                    events=self.events,
                    bytes=self.bytes,
                    batches=self.batches,
                    events_per_sec=round(self.events / elapsed),
                ),
            )
