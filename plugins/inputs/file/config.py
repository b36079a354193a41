"""Options of the `file` input (documented, with their defaults' reasons, in README.md)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.api import InputConfig
from collector.config.messages import HINT_SEPARATOR
from collector.units import Duration, Size
from collector_plugins.inputs.file.codec import normalize_encoding
from collector_plugins.inputs.file.globs import Pattern

MAX_FINGERPRINT_BYTES = 64 * 1024
MIN_LINE_BYTES = 16


class MultilineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str | None = Field(
        default=None,
        description="A line matching this regular expression begins a new record; other lines join the one before.",
        examples=[r"^\d{4}-\d{2}-\d{2}", r"^\[\d"],
    )
    continuation: str | None = Field(
        default=None,
        description="A line matching this regular expression joins the record before it; other lines begin one.",
        examples=[r"^\s", r"^(\s+at |Caused by:|\s*\.\.\. \d+ more)"],
    )
    timeout: Duration = Field(
        default=1.0,
        description="Emit the last record once it has waited this long for more lines.",
        examples=["1s", "500ms"],
    )
    max_lines: int = Field(
        default=500,
        ge=1,
        le=100_000,
        description="A record reaching this many lines is emitted; the next lines start a new record (counted).",
        examples=[500],
    )
    max_bytes: Size = Field(
        default=1024 * 1024,
        description="A record whose text would grow past this size (characters; bytes for ASCII) is cut there.",
        examples=["1MiB"],
    )

    @field_validator("start", "continuation")
    @classmethod
    def _check_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("multiline timeout must be greater than 0")
        return value

    @model_validator(mode="after")
    def _one_pattern(self) -> MultilineConfig:
        if (self.start is None) == (self.continuation is None):
            raise ValueError(
                f"multiline needs exactly one of `start` and `continuation`{HINT_SEPARATOR}`start` matches a "
                "record's first line; `continuation` matches the lines that belong to the line before"
            )
        return self


class FileInputConfig(InputConfig):
    type: Literal["file"] = Field(description="Tails log files matched by glob patterns.", examples=["file"])
    include: list[str] = Field(
        min_length=1,
        description="Absolute glob patterns of the files to read; `**` matches any number of directories.",
        examples=[["/var/log/app/*.log", "/srv/**/logs/*.log"]],
    )
    exclude: list[str] = Field(
        default=[],
        description="Glob patterns of files not to read: a pattern without `/` matches the file name only.",
        examples=[["*.gz", "/var/log/app/debug-*.log"]],
    )
    read_from: Literal["beginning", "end"] = Field(
        default="beginning",
        description=(
            "Where to start in a file that has no checkpoint and already exists when the input starts. Files "
            "created while it runs are always read from the beginning."
        ),
        examples=["beginning", "end"],
    )
    ignore_older: Duration | None = Field(
        default=None,
        description=(
            "Skip the existing content of files without a checkpoint last modified longer ago than this; their "
            "later lines are read. Idle files past this age are also closed. null never skips."
        ),
        examples=["24h", None],
    )
    format: Literal["raw", "docker", "cri"] = Field(
        default="raw",
        description="`raw`: each line is a message; `docker` (json-file) / `cri`: container runtime log lines.",
        examples=["raw", "cri"],
    )
    encoding: str | None = Field(
        default="utf-8",
        description=(
            "Character encoding of the files (utf-8, utf-16, latin-1, cp1252, ...); invalid bytes become U+FFFD "
            "and are counted. null keeps messages as raw bytes."
        ),
        examples=["utf-8", "utf-16", None],
    )
    max_line_bytes: Size = Field(
        default=102400,
        description="Longer lines are cut to this many bytes and marked `truncated: true` (counted as a loss).",
        examples=[102400, "1MiB"],
    )
    multiline: MultilineConfig | None = Field(
        default=None,
        description="Join lines into records (stack traces): `start` or `continuation` pattern, and `timeout`.",
        examples=[{"start": r"^\d{4}-\d{2}-\d{2}", "timeout": "1s"}],
    )
    fingerprint_bytes: Size = Field(
        default=1024,
        description="How many first bytes of a file identify it together with its device and inode.",
        examples=[1024],
    )
    glob_interval: Duration = Field(
        default=10.0,
        description="How often include patterns are scanned for new, renamed and deleted files (besides events).",
        examples=["10s", "1m"],
    )
    poll_interval: Duration = Field(
        default=1.0,
        description="How often open files are checked for new data when no filesystem event says so.",
        examples=["1s", "250ms"],
    )
    use_events: bool = Field(
        default=True,
        description="Learn of new and changed files from filesystem events (inotify); false polls only.",
        examples=[True, False],
    )
    rotate_wait: Duration = Field(
        default=5.0,
        description="How long a renamed-away or deleted file is still read after its last growth before release.",
        examples=["5s"],
    )
    max_open_files: int = Field(
        default=1024,
        ge=1,
        le=1_000_000,
        description="At most this many files are held open; the longest idle are closed and reopened when they grow.",
        examples=[1024],
    )

    @field_validator("include")
    @classmethod
    def _check_include(cls, value: list[str]) -> list[str]:
        for pattern in value:
            Pattern.parse(pattern)  # raises ValueError with the reason
        return value

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, value: str | None) -> str | None:
        return None if value is None else normalize_encoding(value)

    @field_validator("max_line_bytes")
    @classmethod
    def _check_max_line(cls, value: int) -> int:
        if value < MIN_LINE_BYTES:
            raise ValueError(f"max_line_bytes must be at least {MIN_LINE_BYTES}")
        return value

    @field_validator("fingerprint_bytes")
    @classmethod
    def _check_fingerprint(cls, value: int) -> int:
        if not 16 <= value <= MAX_FINGERPRINT_BYTES:
            raise ValueError(f"fingerprint_bytes must be between 16 and {MAX_FINGERPRINT_BYTES}")
        return value

    @field_validator("glob_interval", "poll_interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        if value < 0.01:
            raise ValueError("intervals must be at least 10ms")
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> FileInputConfig:
        if self.format != "raw" and self.encoding != "utf-8":
            raise ValueError(
                f"format {self.format} reads UTF-8 only (container runtimes write UTF-8){HINT_SEPARATOR}"
                "remove `encoding`, or use `format: raw`"
            )
        if self.multiline is not None and self.encoding is None:
            raise ValueError(f"multiline needs text{HINT_SEPARATOR}set an encoding such as `utf-8` (not null)")
        return self
