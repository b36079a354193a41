"""`statsd` input: StatsD / DogStatsD metrics over UDP and TCP, aggregated per interval.

Receiving and aggregating never await: a burst of datagrams (or what a TCP
connection delivered) is parsed in one synchronous call straight into the
aggregator (`statsd_protocol.py`), so the only per-line cost is parsing. Once
per interval, when a window ends, its points (one per series) go downstream in
one batch; a window's points are stamped with its start and carry the
interval, which outputs use for high resolution.

UDP senders cannot be slowed down, but nothing waits on the UDP path: points
are emitted once per interval, and while that emit waits for room downstream
the next window keeps filling. A TCP connection is read as fast as it is
parsed. At stop, the window still open is emitted too, so a restart loses only
what was still in the kernel's socket buffers.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import ComponentContext, InputConfig, InputContext
from collector.events import METRICS, Metric
from collector.log import kv
from collector.units import Duration, Size
from collector_plugins.common.framing import LineSplitter
from collector_plugins.common.listen import Scheme
from collector_plugins.common.listener_options import (
    IdleTimeout,
    ListenerOptions,
    MaxConnections,
    MaxInFlightBytes,
)
from collector_plugins.common.listeners import ListeningInput
from collector_plugins.common.metrics.aggregator import Aggregator, check_interval
from collector_plugins.common.metrics.batch import metric_batch
from collector_plugins.common.stream_server import Connection
from collector_plugins.inputs.statsd_protocol import StatsdParser

STOP_TIMEOUT = 5.0
# Parsed line shapes cached per series (see statsd_protocol.py).
CACHE_PER_SERIES = 4


class StatsdConfig(InputConfig, ListenerOptions):
    listen_scheme: ClassVar[Scheme] = "udp"

    type: Literal["statsd"] = Field(description="Receives StatsD metrics.", examples=["statsd"])
    listen: list[str] = Field(
        default=["udp://127.0.0.1:8125", "tcp://127.0.0.1:8125"],
        min_length=1,
        description=(
            "Addresses to listen on: `udp://HOST:PORT`, `tcp://HOST:PORT`, `unixgram:///PATH` or `unix:///PATH`. "
            "Without a scheme UDP is meant."
        ),
        examples=[["udp://127.0.0.1:8125", "tcp://127.0.0.1:8125"], ["udp://0.0.0.0:8125"]],
    )
    interval: Duration = Field(
        default=60.0,
        description=(
            "Aggregation interval: one point per series per interval (1s to 1h, lining up with minutes: "
            "1, 2, 3, 4, 5, 6, 10, 12, 15, 20 or 30 s, or whole minutes). Below 60s outputs store high resolution."
        ),
        examples=["60s", "10s", "1s"],
    )
    max_series: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description=(
            "Most series (name + tags) held at once; points of further new series are dropped, counted as "
            "`cardinality_limit` and logged once per interval with the metric names."
        ),
        examples=[10000],
    )
    gauge_retention: Duration = Field(
        default=3600.0,
        description="How long a gauge's last value is remembered for `+n`/`-n` deltas after its last update.",
        examples=["1h", "10m"],
    )
    max_line_bytes: Size = Field(
        default=65536,
        description="TCP: longer lines are dropped and counted as malformed.",
        examples=["64KiB"],
    )
    max_connections: MaxConnections
    max_in_flight_bytes: MaxInFlightBytes
    idle_timeout: IdleTimeout

    @field_validator("interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        return check_interval(value)

    @field_validator("max_line_bytes")
    @classmethod
    def _check_max_line(cls, value: int) -> int:
        if not 16 <= value <= 16 * 1024 * 1024:
            raise ValueError("max_line_bytes must be between 16 bytes and 16MiB")
        return value


class StatsdInput(ListeningInput):
    type_name: ClassVar[str] = "statsd"
    description: ClassVar[str] = "StatsD and DogStatsD metrics over UDP and TCP, aggregated per interval."
    Config: ClassVar[type[StatsdConfig]] = StatsdConfig
    emits: ClassVar[frozenset[str]] = frozenset((METRICS,))

    config: StatsdConfig

    def __init__(self, config: StatsdConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.listeners = config.listeners(
            self.log, ctx.name, stream_handler=self._serve, datagram_handler=self._on_datagrams
        )
        self.aggregator = Aggregator(
            config.interval,
            config.max_series,
            loss=ctx.loss,
            log=self.log,
            component=ctx.name,
            gauge_retention=config.gauge_retention,
        )
        self.parser = StatsdParser(self.aggregator, CACHE_PER_SERIES * config.max_series)
        self.datagrams = 0
        self.emitted = 0
        """Aggregated points handed on."""
        self._malformed_reported = 0

    def ports(self) -> list[int]:
        """The bound ports, in `listen` order (tests bind port 0)."""
        return self.listeners.ports()

    def counters(self) -> dict[str, float]:
        return {
            "lines": self.parser.lines,
            "malformed_lines": self.parser.malformed,
            "ignored_lines": self.parser.ignored,
            "datagrams": self.datagrams,
            "series": self.aggregator.series_count,
            "dropped_points": self.aggregator.dropped,
            "emitted_points": self.emitted,
            **self.listeners.counters(),
        }

    # ----------------------------------------------------------------- the loop

    async def run(self, ctx: InputContext) -> None:
        agg = self.aggregator
        async with self.listeners.serving(STOP_TIMEOUT):  # at the end, connections hand on what they sent
            self.log.info(
                "listening for StatsD",
                extra=kv(component=ctx.name, addresses=",".join(self.config.listen), interval=self.config.interval),
            )
            while not await ctx.sleep(agg.until_window_end(time.time())):
                await self._emit(ctx, agg.flush(time.time()))
        # The open window too: a stop or a reload must not lose an interval's worth of points.
        await self._emit(ctx, agg.flush_all())

    async def _emit(self, ctx: InputContext, points: list[Metric]) -> None:
        self._report_malformed()
        if not points:
            return
        self.emitted += len(points)
        await ctx.emit(metric_batch(points))

    def _report_malformed(self) -> None:
        first = self.parser.take_first_malformed()
        total = self.parser.malformed
        if first is None or total == self._malformed_reported:
            return
        line, why = first
        self.log.warning(
            "malformed StatsD lines were skipped (the first of this interval is shown)",
            extra=kv(
                component=self.ctx.name,
                lines=total - self._malformed_reported,
                reason=why,
                line=line.decode("utf-8", "replace"),
            ),
        )
        self._malformed_reported = total

    # ----------------------------------------------------------------- receiving

    def _on_datagrams(self, datagrams: list[tuple[bytes, Any]]) -> None:
        parser = self.parser
        malformed = 0
        for data, _ in datagrams:
            malformed += parser.feed(data)
        self.datagrams += len(datagrams)
        if malformed:
            self.ctx.loss("malformed", malformed)

    async def _serve(self, conn: Connection) -> None:
        splitter = LineSplitter(self.config.max_line_bytes)
        while True:
            data = await conn.read(splitter.pending)
            lines, cuts = splitter.feed(data) if data else splitter.finish()
            if cuts:
                # A cut line's value or tags are gone: not a point worth keeping.
                for i in sorted(cuts, reverse=True):
                    del lines[i]
                self.parser.malformed += len(cuts)
                self.parser.first_malformed = self.parser.first_malformed or (b"", "line longer than max_line_bytes")
                self.ctx.loss("malformed", len(cuts))
            if lines:
                malformed = self.parser.feed_lines(lines)
                if malformed:
                    self.ctx.loss("malformed", malformed)
            if not data:
                return
            del data, lines  # not kept while the next read waits
            await asyncio.sleep(0)  # a fast sender must not starve the flush and the other connections
