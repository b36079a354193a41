"""`parse_json`: parse a field of each log record (by default `message`) as JSON.

orjson parses `str` and `bytes` alike, so raw messages are never decoded first.
A record that cannot be parsed is never an exception: it is counted in
`parse_errors`, optionally marked with a reason in `error_field`, and kept
unchanged or dropped (`on_error`).

Merging into the record root keeps the record contract: `timestamp` stays the
float epoch seconds every output relies on. A parsed `timestamp` that is a
number replaces it (when `overwrite` allows); any other parsed `timestamp`
(an ISO string, say) is stored as `timestamp_raw` instead.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, model_validator

from collector.api import ComponentContext, Processor, ProcessorConfig
from collector.events import LOGS, Batch
from collector_plugins.common.parsed_fields import Failures, store_fields

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError

_FAILED: Any = object()  # marks a record whose source field did not parse


class ParseJsonConfig(ProcessorConfig):
    type: Literal["parse_json"] = Field(description="Parses a field as JSON.", examples=["parse_json"])
    field: str = Field(
        default="message",
        min_length=1,
        description="The top-level field holding the JSON text (str or bytes).",
        examples=["message", "log"],
    )
    target: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "null: merge the keys of the parsed object into the record (the JSON must be an object); "
            "a name: store the parsed value, of any JSON type, under that top-level key."
        ),
        examples=[None, "parsed"],
    )
    overwrite: bool = Field(
        default=True,
        description="Let parsed keys (or `target`) replace fields the record already has; false keeps the record's.",
        examples=[True, False],
    )
    drop_field: bool = Field(
        default=False,
        description="Remove the source `field` after a successful parse.",
        examples=[True],
    )
    on_error: Literal["keep", "drop"] = Field(
        default="keep",
        description="What to do with a record that cannot be parsed: pass it on unchanged (`keep`) or drop it.",
        examples=["keep", "drop"],
    )
    error_field: str | None = Field(
        default=None,
        min_length=1,
        description="When set, a kept record that failed to parse gets this field set to a short reason.",
        examples=["_parse_error"],
    )

    @model_validator(mode="after")
    def _check(self) -> ParseJsonConfig:
        if self.drop_field and self.target == self.field:
            raise ValueError("drop_field would remove the parsed value itself when target equals field")
        return self


class ParseJson(Processor):
    type_name: ClassVar[str] = "parse_json"
    description: ClassVar[str] = "Parses a log field (default: message) as JSON into the record or a target field."
    Config: ClassVar[type[ParseJsonConfig]] = ParseJsonConfig
    accepts: ClassVar[frozenset[str]] = frozenset((LOGS,))
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: ParseJsonConfig

    def __init__(self, config: ParseJsonConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.parse_errors = 0
        """Records that could not be parsed so far (kept or dropped as `on_error` says)."""
        self.dropped = 0
        """Records dropped because they could not be parsed (`on_error: drop`)."""
        self._parse = self._merge if config.target is None else self._store

    def counters(self) -> dict[str, float]:
        return {"parse_errors": self.parse_errors, "dropped_unparsable": self.dropped}

    def process(self, batch: Batch) -> Batch | None:
        records = batch.records
        failed = self._parse(records)
        if not failed:
            return batch
        self.parse_errors += len(failed)
        if self.config.on_error == "keep":
            error_field = self.config.error_field
            if error_field is not None:
                for r, reason in failed:
                    r[error_field] = reason
            return batch
        self.dropped += len(failed)
        self.ctx.loss("unparsable", len(failed))
        if len(failed) == len(records):
            return None
        bad = {id(r) for r, _ in failed}
        kept = [r for r in records if id(r) not in bad]
        return batch.with_records(kept, batch.nbytes * len(kept) // len(records))

    def _merge(self, records: list[dict[str, Any]]) -> Failures:
        """Parse and merge objects into their records; returns (record, reason) for the failures."""
        cfg = self.config
        drop, overwrite = cfg.drop_field, cfg.overwrite
        failed: Failures = []
        for r in records:
            parsed = self._parse_field(r, failed)
            if parsed is _FAILED:
                continue
            if type(parsed) is not dict:
                failed.append((r, "not a JSON object"))
                continue
            if drop:
                del r[cfg.field]
            store_fields(r, parsed, None, overwrite)
        return failed

    def _store(self, records: list[dict[str, Any]]) -> Failures:
        """Parse and store values under `target`; returns (record, reason) for the failures."""
        cfg = self.config
        target, drop, overwrite = cfg.target, cfg.drop_field, cfg.overwrite
        assert target is not None
        failed: Failures = []
        for r in records:
            parsed = self._parse_field(r, failed)
            if parsed is _FAILED:
                continue
            if drop:
                del r[cfg.field]
            store_fields(r, parsed, target, overwrite)
        return failed

    def _parse_field(self, record: dict[str, Any], failed: Failures) -> Any:
        """The parsed value of the source field, or `_FAILED` (the reason appended to `failed`)."""
        text = record.get(self.config.field)
        if text is None:
            failed.append((record, f"no field {self.config.field}"))
            return _FAILED
        try:
            return _loads(text)
        except (_JSONDecodeError, TypeError):
            failed.append((record, "invalid JSON"))
            return _FAILED
