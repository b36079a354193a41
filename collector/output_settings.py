"""Settings every output has: `buffer`, `batch`, `retry`, `concurrency`, `dead_letter`.

They live in `OutputConfig`, so each output plugin inherits them and they appear
in its schema. Defaults suit a local destination; AWS outputs lower `batch`
limits through their declared `OutputLimits` (the validator keeps user values
at or below those).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collector.config.messages import HINT_SEPARATOR
from collector.units import Duration, Size

MEMORY_DEFAULT_BYTES = 32 * 1024 * 1024
MEMORY_DEFAULT_EVENTS = 20_000
DISK_DEFAULT_BYTES = 1024 * 1024 * 1024


class BufferSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["memory", "disk"] = Field(
        "memory",
        description="`memory` (bounded, lost on a crash) or `disk` (survives crashes and restarts).",
        examples=["disk"],
    )
    max_bytes: Size | None = Field(
        None,
        description="Most payload a buffer holds: default 32MiB in memory, 1GiB on disk.",
        examples=["1GiB"],
    )
    max_events: int | None = Field(
        None, ge=1, description="Memory buffers only: most events held (default 20000).", examples=[20000]
    )
    when_full: Literal["block", "drop_newest"] = Field(
        "block",
        description="`block` slows the inputs down (backpressure); `drop_newest` drops new data, counted.",
        examples=["drop_newest"],
    )
    fsync: Literal["always", "interval", "never"] = Field(
        "interval",
        description="Disk buffers only: when data is forced to disk. `interval` can lose up to "
        "`fsync_interval` of data on power loss, never on a process crash.",
        examples=["always"],
    )
    fsync_interval: Duration = Field(1.0, description="Disk buffers only: fsync period.", examples=["1s"])

    @model_validator(mode="after")
    def _fields_fit_type(self) -> BufferSettings:
        if self.type == "memory":
            disk_only = {"fsync", "fsync_interval"} & self.model_fields_set
            if disk_only:
                raise ValueError(
                    f"{', '.join(sorted(disk_only))} applies to disk buffers only{HINT_SEPARATOR}"
                    "remove it, or set `type: disk`"
                )
        elif "max_events" in self.model_fields_set:
            raise ValueError(
                f"max_events applies to memory buffers only{HINT_SEPARATOR}bound a disk buffer with max_bytes"
            )
        return self

    @property
    def bytes_limit(self) -> int:
        if self.max_bytes is not None:
            return self.max_bytes
        return MEMORY_DEFAULT_BYTES if self.type == "memory" else DISK_DEFAULT_BYTES

    @property
    def events_limit(self) -> int:
        return self.max_events if self.max_events is not None else MEMORY_DEFAULT_EVENTS


class BatchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_events: int | None = Field(
        None, ge=1, description="Most records per request (at most the destination's limit).", examples=[500]
    )
    max_bytes: Size | None = Field(
        None, description="Most bytes per request (at most the destination's limit).", examples=["1MiB"]
    )
    timeout: Duration | None = Field(
        None,
        description="How long a request may wait to fill up before it is sent anyway.",
        examples=["1s"],
    )


class RetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_backoff: Duration = Field(0.5, description="First wait before a retry.", examples=["500ms"])
    # 20 s is where the AWS SDKs cap their backoff (MAX_BACKOFF in the AWS SDKs and Tools Reference Guide,
    # "Retry behavior", https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html, checked
    # 2026-12-06); a longer cap only delays recovery once a destination is back.
    max_backoff: Duration = Field(20.0, description="Longest wait between retries.", examples=["20s"])
    max_retries: int | None = Field(
        None,
        ge=0,
        description="Retries before records go to the dead-letter queue; unset retries for ever.",
        examples=[10],
    )


class DeadLetterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_bytes: Size = Field(
        1024 * 1024 * 1024,
        description="Most dead letters kept per output; past it they are dropped (counted).",
        examples=["256MiB"],
    )
