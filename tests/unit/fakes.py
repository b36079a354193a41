"""Small plugins for testing the core: each does one predictable thing."""

from __future__ import annotations

import asyncio
from typing import ClassVar, Literal

from pydantic import Field

from collector.api import (
    ALL_KINDS,
    Input,
    InputConfig,
    InputContext,
    Output,
    OutputConfig,
    Processor,
    ProcessorConfig,
)
from collector.events import LOGS, METRICS, Batch, Metric
from collector.registry import Registry
from collector.testing import Capture, CaptureOutput


class CountingInputConfig(InputConfig):
    type: Literal["counting"] = Field(description="Plugin type.", examples=["counting"])
    batches: int | None = Field(3, description="Batches to emit, None for until stopped.", examples=[3])
    batch_size: int = Field(10, description="Records per batch.", examples=[10])
    interval: float = Field(0.0, description="Seconds between batches.", examples=[0.01])
    include: list[str] = Field(default_factory=list, description="Unused; for typo hints.", examples=[["a"]])


class CountingInput(Input):
    """Emits log records with a global `seq`, `batches` times (or until stopped)."""

    type_name = "counting"
    description = "Test input."
    Config = CountingInputConfig
    emits: ClassVar[frozenset[str]] = frozenset({LOGS})

    async def run(self, ctx: InputContext) -> None:
        seq = 0
        sent = 0
        while not ctx.stopping.is_set():
            if self.config.batches is not None and sent >= self.config.batches:
                return
            size = self.config.batch_size
            records = [{"timestamp": 0.0, "message": f"m{seq + i}", "seq": seq + i} for i in range(size)]
            seq += self.config.batch_size
            sent += 1
            await ctx.emit(Batch(LOGS, records, nbytes=len(records) * 2))
            if self.config.interval:
                if await ctx.sleep(self.config.interval):
                    return
            else:
                await asyncio.sleep(0)


class BurstInputConfig(InputConfig):
    type: Literal["burst"] = Field(description="Plugin type.", examples=["burst"])
    batches: int = Field(10, description="Batches sent at once, without waiting.", examples=[10])


class BurstInput(Input):
    """Sends `batches` batches of 10 with try_emit, the way a UDP input must (it cannot wait)."""

    type_name = "burst"
    description = "Test input that cannot wait."
    Config = BurstInputConfig
    emits: ClassVar[frozenset[str]] = frozenset({LOGS})

    async def run(self, ctx: InputContext) -> None:
        for b in range(self.config.batches):
            ctx.try_emit(Batch(LOGS, [{"message": "u", "seq": b * 10 + i} for i in range(10)]))


class MetricInputConfig(InputConfig):
    type: Literal["metric_src"] = Field(description="Plugin type.", examples=["metric_src"])


class MetricInput(Input):
    type_name = "metric_src"
    description = "Test metrics input."
    Config = MetricInputConfig
    emits: ClassVar[frozenset[str]] = frozenset({METRICS})

    async def run(self, ctx: InputContext) -> None:
        await ctx.emit(Batch(METRICS, [Metric("m", "gauge", 1.0)]))


class TagConfig(ProcessorConfig):
    type: Literal["tag"] = Field(description="Plugin type.", examples=["tag"])
    key: str = Field("tag", description="Field to set.", examples=["tag"])
    value: str = Field("x", description="Value to set.", examples=["x"])


class Tag(Processor):
    type_name = "tag"
    description = "Sets one field."
    Config = TagConfig
    accepts: ClassVar[frozenset[str]] = frozenset({LOGS})

    def process(self, batch: Batch) -> Batch | None:
        for r in batch.records:
            r[self.config.key] = self.config.value
        return batch


class PassConfig(ProcessorConfig):
    type: Literal["pass"] = Field(description="Plugin type.", examples=["pass"])


class Pass(Processor):
    """Passes every batch on untouched: it forwards the records it receives to its consumers."""

    type_name = "pass"
    description = "Passes batches on."
    Config = PassConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS
    mutates_records = False

    def process(self, batch: Batch) -> Batch | None:
        return batch


class RebuildConfig(ProcessorConfig):
    type: Literal["rebuild"] = Field(description="Plugin type.", examples=["rebuild"])


class Rebuild(Processor):
    """Returns new records (copies with `rebuilt` set): what happens downstream of it cannot reach its input."""

    type_name = "rebuild"
    description = "Returns new records."
    Config = RebuildConfig
    accepts: ClassVar[frozenset[str]] = frozenset({LOGS})
    mutates_records = False
    forwards_records = False

    def process(self, batch: Batch) -> Batch | None:
        return batch.with_records([{**r, "rebuilt": True} for r in batch.records])


class BoomConfig(ProcessorConfig):
    type: Literal["boom"] = Field(description="Plugin type.", examples=["boom"])
    every: int = Field(2, description="Raise on every n-th batch.", examples=[2])


class Boom(Processor):
    """Raises on every `every`-th batch it sees (counted across restarts)."""

    type_name = "boom"
    description = "Fails on purpose."
    Config = BoomConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS
    seen: ClassVar[int] = 0

    def process(self, batch: Batch) -> Batch | None:
        Boom.seen += 1
        if Boom.seen % self.config.every == 0:
            raise RuntimeError("boom")
        return batch


class MetricsSinkConfig(OutputConfig):
    type: Literal["metrics_sink"] = Field(description="Plugin type.", examples=["metrics_sink"])


class MetricsSink(Output):
    type_name = "metrics_sink"
    description = "Accepts metrics only."
    Config = MetricsSinkConfig
    accepts: ClassVar[frozenset[str]] = frozenset({METRICS})

    async def write(self, batch: Batch) -> None:
        return None


class ScribbleConfig(OutputConfig):
    type: Literal["scribble"] = Field(description="Plugin type.", examples=["scribble"])


class Scribble(CaptureOutput):
    """Keeps copies of what it is sent (see `CaptureOutput`), then sets `scribbled` on the records it was given."""

    type_name = "scribble"
    description = "An output that modifies the records it sends."
    Config = ScribbleConfig  # type: ignore[assignment]
    accepts: ClassVar[frozenset[str]] = frozenset({LOGS})
    mutates_records = True

    async def write(self, batch: Batch) -> None:
        self.records.extend(dict(r) for r in batch.records)
        for r in batch.records:
            r["scribbled"] = self.ctx.name


def make_registry(capture: Capture | None = None) -> Registry:
    """The fakes, with the capture outputs bound to `capture` (a test that reads what they received passes one)."""
    registry = Registry()
    outputs: tuple[type[Output], ...] = (
        (capture.output, capture.bind(Scribble)) if capture else (CaptureOutput, Scribble)
    )
    for cls in (CountingInput, BurstInput, MetricInput, Tag, Pass, Rebuild, Boom, MetricsSink, *outputs):
        registry.add(cls)
    return registry
