"""`trace_index`: keep recent segments and trace-tagged log lines in a local index for `collector trace`.

Wire the `xray` input, the `otlp` input (spans and logs) and the log pipelines
that went through `trace_context` into it; `collector trace TRACE_ID` then
prints one request's segments, spans and log lines in time order, from this
node alone, even while the network is down. The index is a size-bounded SQLite file under the data directory
(`collector_plugins/common/trace_index.py` has the design). Records without a
trace id are not indexed (counted as `untraced`); writing happens in a worker
thread, one transaction per batch.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import LOGS, TRACES, Batch
from collector.units import Size
from collector_plugins.common.trace_index import Entry, TraceIndex, index_path, log_entry, trace_entry

MIN_MAX_BYTES = 1024 * 1024


class TraceIndexConfig(OutputConfig):
    type: Literal["trace_index"] = Field(
        description="Indexes recent segments and trace-tagged log lines for `collector trace`.",
        examples=["trace_index"],
    )
    max_bytes: Size = Field(
        default=256 * 1024 * 1024,
        description="Most the index file holds; past it the oldest entries are removed (at least 1MiB).",
        examples=["256MiB", "1GiB"],
    )
    log_trace_fields: list[str] = Field(
        default=["trace_id", "xray_trace_id"],
        min_length=1,
        description="Fields of a log record holding its trace id (either form), tried in order.",
        examples=[["trace_id", "xray_trace_id"]],
    )

    @field_validator("max_bytes")
    @classmethod
    def _check_max_bytes(cls, value: int) -> int:
        if value < MIN_MAX_BYTES:
            raise ValueError("max_bytes must be at least 1MiB")
        return value


class TraceIndexOutput(Output):
    type_name: ClassVar[str] = "trace_index"
    description: ClassVar[str] = (
        "Keeps recent segments and trace-tagged log lines in a local index for `collector trace`."
    )
    Config: ClassVar[type[TraceIndexConfig]] = TraceIndexConfig
    accepts: ClassVar[frozenset[str]] = frozenset((LOGS, TRACES))

    config: TraceIndexConfig

    def __init__(self, config: TraceIndexConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.path = index_path(ctx.data_dir, ctx.name)
        self._index: TraceIndex | None = None
        self._fields = tuple(config.log_trace_fields)
        self.segments = 0
        """Segments indexed."""
        self.spans = 0
        """OTLP spans indexed."""
        self.logs = 0
        """Log records indexed."""
        self.untraced = 0
        """Records without a trace id (not indexed)."""

    def counters(self) -> dict[str, float]:
        return {
            "segments": self.segments,
            "spans": self.spans,
            "logs": self.logs,
            "untraced": self.untraced,
            "trimmed": self._index.trimmed if self._index else 0,
        }

    async def start(self) -> None:
        self._index = await asyncio.to_thread(TraceIndex, self.path, self.config.max_bytes)

    async def stop(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            await asyncio.to_thread(index.close)

    async def write(self, batch: Batch) -> None:
        if self._index is None:
            await self.start()
        await asyncio.to_thread(self._add, batch.kind, batch.records)

    def _add(self, kind: str, records: list[Any]) -> None:
        if kind == TRACES:
            entries = [trace_entry(r) for r in records if type(r) is dict]
        else:
            fields = self._fields
            entries = [log_entry(r, fields) for r in records if type(r) is dict]
        kept: list[Entry] = [e for e in entries if e is not None]
        assert self._index is not None
        self._index.add(kept)
        if kind == TRACES:
            spans = sum(1 for e in kept if e.kind == "span")
            self.spans += spans
            self.segments += len(kept) - spans
        else:
            self.logs += len(kept)
        self.untraced += len(records) - len(kept)
