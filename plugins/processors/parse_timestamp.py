"""`parse_timestamp`: a field holding a time in text (or epoch numbers) becomes the record's time.

Formats are tried in order until one matches; each is a name (`rfc3339`,
`iso8601`, `unix`, `unix_ms`, `unix_us`, `unix_ns`, `rfc3164`) or a `strptime`
pattern (see `collector_plugins.common.timestamps`). Times without an offset
of their own are read in `timezone`. The result, float epoch seconds, goes to
`target` (by default the record's `timestamp`, which every output uses).

Consecutive records often carry the same stamp: the last text and its result
are remembered, so a run of them is parsed once.

A value no format matches keeps the record as it is, tagged in `error_field`
and counted in `parse_errors`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from collector.api import ComponentContext, Processor, ProcessorConfig
from collector.events import LOGS, Batch
from collector_plugins.common.parsed_fields import Failures, tag_failures
from collector_plugins.common.timestamps import NAMED_FORMATS, Parser, timestamp_parser

NO_FORMAT = "timestamp matched no format"


class ParseTimestampConfig(ProcessorConfig):
    type: Literal["parse_timestamp"] = Field(
        description="Parses a time field into the record's timestamp.", examples=["parse_timestamp"]
    )
    field: str = Field(
        min_length=1,
        description="The top-level field holding the time (text, bytes, or a number for the unix formats).",
        examples=["timestamp_raw", "time"],
    )
    formats: list[str] = Field(
        min_length=1,
        description=(
            f"Formats tried in order: {', '.join(f'`{name}`' for name in NAMED_FORMATS)} "
            "(a BSD syslog stamp `Oct  6 00:17:09`, its year inferred), or a Python strptime pattern "
            "such as `%d/%b/%Y:%H:%M:%S %z`."
        ),
        examples=[["rfc3339"], ["%d/%b/%Y:%H:%M:%S %z", "unix_ms"]],
    )
    timezone: str = Field(
        default="UTC",
        min_length=1,
        description="IANA time zone for times without an offset (iso8601 without one, rfc3164, patterns without %z).",
        examples=["UTC", "Europe/Paris"],
    )
    target: str = Field(
        default="timestamp",
        min_length=1,
        description="Where the result (float epoch seconds) is written; `timestamp` makes it the record's time.",
        examples=["timestamp", "event_time"],
    )
    drop_field: bool = Field(
        default=False,
        description="Remove the source `field` after a successful parse.",
        examples=[True],
    )
    error_field: str | None = Field(
        default="parse_error",
        min_length=1,
        description="A record whose time matches no format gets this field set to the reason; null: untouched.",
        examples=["parse_error", None],
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}: use an IANA name such as UTC or Europe/Paris") from None
        return name

    @model_validator(mode="after")
    def _check(self) -> ParseTimestampConfig:
        zone = ZoneInfo(self.timezone)
        for spec in self.formats:
            timestamp_parser(spec, zone)  # raises ValueError naming the bad format
        if self.drop_field and self.target == self.field:
            raise ValueError("drop_field would remove the result itself when target equals field")
        return self


class ParseTimestamp(Processor):
    type_name: ClassVar[str] = "parse_timestamp"
    description: ClassVar[str] = "Parses a time field (formats tried in order) into the record's timestamp."
    Config: ClassVar[type[ParseTimestampConfig]] = ParseTimestampConfig
    accepts: ClassVar[frozenset[str]] = frozenset((LOGS,))
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: ParseTimestampConfig

    def __init__(self, config: ParseTimestampConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        zone = ZoneInfo(config.timezone)
        self._parsers: list[Parser] = [timestamp_parser(spec, zone) for spec in config.formats]
        self._last_value: Any = None
        self._last_result: float | None = None
        self.parse_errors = 0
        """Records whose field was missing or matched no format, so far (all kept)."""

    def counters(self) -> dict[str, float]:
        return {"parse_errors": self.parse_errors}

    def _parse(self, value: Any) -> float | None:
        if value == self._last_value and type(value) is type(self._last_value):
            return self._last_result
        result = None
        for parser in self._parsers:
            result = parser(value)
            if result is not None:
                break
        self._last_value, self._last_result = value, result
        return result

    def process(self, batch: Batch) -> Batch | None:
        cfg = self.config
        source, target, drop = cfg.field, cfg.target, cfg.drop_field
        failed: Failures = []
        for record in batch.records:
            value = record.get(source)
            if value is None:
                failed.append((record, f"no field {source}"))
                continue
            seconds = self._parse(value)
            if seconds is None:
                failed.append((record, NO_FORMAT))
                continue
            if drop:
                del record[source]
            record[target] = seconds
        if failed:
            self.parse_errors += len(failed)
            tag_failures(failed, cfg.error_field)
        return batch
