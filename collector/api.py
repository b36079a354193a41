"""The plugin contract: what an input, a processor and an output implement.

A plugin is a class with

- `type_name`: the `type:` users write in the config,
- `description`: one line for `collector schema` and the docs,
- `Config`: a pydantic model (a subclass of `InputConfig`, `ProcessorConfig` or
  `OutputConfig`) declaring every option with a description and an example;
  unknown keys are rejected,
- `accepts` / `emits`: the signal kinds it consumes and produces (a plugin whose
  kinds depend on its config overrides `emitted_kinds` / `accepted_kinds`).

The runtime owns the loops, the channels, supervision and the counters. A plugin
only does its job:

- `Input.run(ctx)` produces batches with `await ctx.emit(batch)` until
  `ctx.stopping` is set (or its source ends) and then returns.
- `Processor.process(batch)` is synchronous: it returns the batch to pass on
  (the same object or a new one), or `None` to pass nothing on. A processor that
  needs I/O is an input or an output in disguise.
- `Output.send(batch)` delivers one request and returns a `SendResult` (or
  raises `RetryableError` / `PermanentError`, collector/send_result.py); the
  output driver (collector/output_driver.py) buffers, batches and retries.
  An output that either takes a whole batch or raises may implement
  `write(batch)` instead, which the default `send` calls.

Any exception escaping these methods is caught by the supervisor: logged once
with the component name, counted, and the component rebuilt from its config and
restarted with backoff. Except from `Processor.process`: there the runtime first
isolates the records the processor raises on (collector/isolation.py) and passes
the rest on; a processor should still keep, tag or count bad input itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from collector.checkpoint import CheckpointFile
from collector.events import KINDS, Batch
from collector.output_limits import OutputLimits
from collector.output_settings import BatchSettings, BufferSettings, DeadLetterSettings, RetrySettings
from collector.private_files import private_dir
from collector.send_result import SendResult

ALL_KINDS = frozenset(KINDS)


class ComponentConfig(BaseModel):
    """Options every component has. Plugin configs subclass one of the three below."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = Field(description="Which plugin this component runs.", examples=["generator"])


class InputConfig(ComponentConfig):
    pass


class _ConsumerConfig(ComponentConfig):
    inputs: list[str] = Field(
        min_length=1,
        description="Upstream component names (or glob patterns over them) whose batches this one consumes.",
        examples=[["app_logs", "k8s_*"]],
    )


class ProcessorConfig(_ConsumerConfig):
    pass


class OutputConfig(_ConsumerConfig):
    buffer: BufferSettings = Field(
        BufferSettings(),
        description="Where data waits for this output: memory (default) or disk, and what to do when full.",
        examples=[{"type": "disk", "max_bytes": "1GiB", "when_full": "block"}],
    )
    batch: BatchSettings = Field(
        BatchSettings(),
        description="How records are grouped into requests (at most the destination's limits).",
        examples=[{"max_events": 500, "timeout": "1s"}],
    )
    retry: RetrySettings = Field(
        RetrySettings(),
        description="How failed requests are retried (exponential backoff with full jitter).",
        examples=[{"initial_backoff": "500ms", "max_backoff": "20s", "max_retries": 10}],
    )
    concurrency: int = Field(1, ge=1, le=64, description="Requests in flight at once.", examples=[1])
    dead_letter: DeadLetterSettings = Field(
        DeadLetterSettings(),
        description="Where records the destination rejects for good are kept (data_dir/dead_letter/NAME).",
        examples=[{"max_bytes": "256MiB"}],
    )


@dataclass
class HostFacts:
    """Facts about this node that templates (`{host}`) may use."""

    host: str
    extra: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, str]:
        return {"host": self.host, **self.extra}


def _no_stats() -> list[Any]:
    return []


def _no_loss(reason: str, events: int) -> None:
    return None


def _no_count(exc: OSError) -> None:
    return None


@dataclass
class ComponentContext:
    """What the runtime gives a component: its identity, a logger and its state directory.

    `loss(reason, events)` records events this component does not pass on (a
    filter's dropped records, a truncated line) in the loss ledger: nothing is
    ever dropped without being counted. `runtime_stats` returns the counters of
    every running component (what `/status` shows); only self-observability
    inputs need it. `checkpoint_file(name)` is the component's state file,
    whose failed writes the runtime counts
    (`collector_component_checkpoint_failures_total`).
    """

    name: str
    logger: logging.Logger
    data_dir: Path
    host: HostFacts
    runtime_stats: Callable[[], list[Any]] = _no_stats
    loss: Callable[[str, int], None] = _no_loss
    checkpoint_failed: Callable[[OSError], None] = _no_count

    def checkpoint_file(self, name: str) -> CheckpointFile:
        """`name` in `state_dir()`, written atomically, 0600; failed saves are counted, then raised."""
        return CheckpointFile(self.state_dir() / name, self.checkpoint_failed)

    def state_dir(self) -> Path:
        """A directory owned by this component under the data directory (created on demand, 0700)."""
        return private_dir(self.data_dir / "components" / self.name)


class InputContext(ComponentContext):
    """Adds the way out for an input's batches and the stop signal."""

    def __init__(
        self,
        name: str,
        logger: logging.Logger,
        data_dir: Path,
        host: HostFacts,
        emit: Any,
        stopping: asyncio.Event,
        runtime_stats: Callable[[], list[Any]] = _no_stats,
        loss: Callable[[str, int], None] = _no_loss,
        try_emit: Callable[[Batch], bool] | None = None,
        checkpoint_failed: Callable[[OSError], None] = _no_count,
    ) -> None:
        super().__init__(name, logger, data_dir, host, runtime_stats, loss, checkpoint_failed)
        self._emit = emit
        self._try_emit = try_emit
        self.stopping = stopping

    async def emit(self, batch: Batch) -> None:
        """Send a batch downstream; waits while a downstream channel is full (backpressure)."""
        await self._emit(batch)

    def try_emit(self, batch: Batch) -> bool:
        """Send a batch without waiting, for inputs that cannot slow their sender (UDP).

        Consumers whose channel is full do not get the batch; those events are
        counted in the loss ledger as `channel_full` under this input. Returns
        True when every consumer took it.
        """
        if self._try_emit is None:
            raise RuntimeError("try_emit is only available while the input runs")
        return self._try_emit(batch)

    async def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; return True if the input is asked to stop meanwhile."""
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True


class Component:
    type_name: ClassVar[str]
    description: ClassVar[str]
    Config: ClassVar[type[ComponentConfig]]
    accepts: ClassVar[frozenset[str]] = frozenset()
    emits: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: Any, ctx: ComponentContext) -> None:
        self.config = config
        self.ctx = ctx
        self.log = ctx.logger

    @classmethod
    def accepted_kinds(cls, config: Any) -> frozenset[str]:
        return cls.accepts

    @classmethod
    def emitted_kinds(cls, config: Any) -> frozenset[str]:
        return cls.emits

    @classmethod
    def memory_bound(cls, config: Any) -> int:
        """Most bytes this component holds by its own bound (a receiver's connections); counts in budgets.memory."""
        return 0

    async def start(self) -> None:
        """Acquire resources (sockets, files). Called before any data flows."""

    async def stop(self) -> None:
        """Release resources; an output flushes what it holds. Safe without `start`."""

    def counters(self) -> dict[str, float]:
        """Plugin-specific figures (e.g. records filtered out), read when `/metrics` or `/status` is served.

        Keep them as plain attributes bumped once per batch; this only reports them.
        """
        return {}


class Input(Component):
    Config: ClassVar[type[InputConfig]]

    async def run(self, ctx: InputContext) -> None:
        raise NotImplementedError

    async def drained(self) -> None:
        """Called once at shutdown, after `stop()`, when everything downstream has drained.

        Acknowledgements keep arriving while the pipeline drains, after the input
        stopped: an input that checkpoints its position saves it once more here.
        """


class Processor(Component):
    Config: ClassVar[type[ProcessorConfig]]

    # Declarations fan-out relies on (collector/graph.py, `copy_plan`); wrong ones let branches see each other.
    # mutates_records: `process` may modify the records it receives, or the batch and its list, in place
    # (top-level keys only: nested values are replaced, never changed in place). False lets fan-out share them.
    mutates_records: ClassVar[bool] = True
    # forwards_records: the batches it returns may hold records it received (the same objects). False when
    # every record it returns is new: what happens downstream of it then cannot reach its input.
    forwards_records: ClassVar[bool] = True

    def process(self, batch: Batch) -> Batch | None:
        raise NotImplementedError


class Output(Component):
    """Delivers batches. The shared driver does buffering, batching, retries and dead letters.

    Implement `send` (return a `SendResult`, or raise `RetryableError` /
    `PermanentError`), or, for a destination that either takes a whole batch or
    raises, just `write`. Declare the destination's hard `limits`.
    """

    Config: ClassVar[type[OutputConfig]]
    limits: ClassVar[OutputLimits] = OutputLimits()
    # True if `send`/`write` modify the records they are given. Both buffer types hand the output the very
    # records routed to it (a disk buffer its in-memory tail), shared with other branches unless fan-out
    # copies them: fan-out copies for an output that declares this (collector/graph.py, `copy_plan`).
    mutates_records: ClassVar[bool] = False
    # Seconds a request may wait to fill up by default; 0 sends whatever is ready at once.
    default_batch_timeout: ClassVar[float] = 0.0
    # Request size when the user sets none, for outputs whose destination has no API limit (`limits`
    # unset): the user's `batch:` value then replaces it rather than being capped by it. None: the
    # driver's defaults for local outputs (2000 events, 10MiB), which cap `batch:` as if they were limits.
    default_max_events: ClassVar[int | None] = None
    default_max_bytes: ClassVar[int | None] = None
    # True: the driver sets `Batch.record_origins` (one stable name per record, kept on resends of a subset)
    # on every batch it sends, for outputs that write each record idempotently (OpenSearch `_id`).
    record_origins: ClassVar[bool] = False

    async def send(self, batch: Batch) -> SendResult | None:
        await self.write(batch)
        return None

    async def write(self, batch: Batch) -> None:
        raise NotImplementedError

    def classify(self, exc: Exception) -> SendResult:
        """The outcome of an unexpected exception from `send`; retryable unless the output knows better."""
        return SendResult.retry(f"{type(exc).__name__}: {exc}")

    def record_size(self, record: Any) -> int:
        """Bytes a record counts against `batch.max_bytes` (outputs with exact API rules override)."""
        message = record.get("message") if isinstance(record, dict) else None
        return len(message) if message is not None else 64


SECTIONS: dict[str, type[Component]] = {
    "inputs": Input,
    "processors": Processor,
    "outputs": Output,
}
