"""`parse_logfmt`: `key=value` pairs of a field (by default `message`) become fields.

The decoding rules are those of go-logfmt (see `collector_plugins.common.logfmt`):
quoted values with Go escapes, `key=` is an empty string, a bare `key` is
`true`, values are strings. No library on PyPI is both maintained and fast for
this, hence the small decoder of our own.

A record that is not logfmt is kept as it is and tagged: counted in
`parse_errors` and, unless `error_field` is null, given that field with the
reason. A parsed `timestamp` is stored as `timestamp_raw`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from collector.api import ComponentContext, Processor, ProcessorConfig
from collector.events import LOGS, Batch
from collector_plugins.common.logfmt import LogfmtError, parse_logfmt
from collector_plugins.common.parsed_fields import Failures, store_fields, tag_failures, text_of


class ParseLogfmtConfig(ProcessorConfig):
    type: Literal["parse_logfmt"] = Field(description="Parses a field as logfmt.", examples=["parse_logfmt"])
    field: str = Field(
        default="message",
        min_length=1,
        description="The top-level field holding the logfmt text (str or bytes).",
        examples=["message", "log"],
    )
    target: str | None = Field(
        default=None,
        min_length=1,
        description="null: set the pairs as top-level fields; a name: store them as one object under that key.",
        examples=[None, "fields"],
    )
    overwrite: bool = Field(
        default=True,
        description="Let parsed keys (or `target`) replace fields the record already has.",
        examples=[True, False],
    )
    drop_field: bool = Field(
        default=False,
        description="Remove the source `field` after a successful parse.",
        examples=[True],
    )
    bare_keys: bool = Field(
        default=True,
        description=(
            "Accept a key without `=` as `true` (the logfmt convention). false makes such a line a parse error, "
            "so that plain prose mixed into a logfmt stream is tagged instead of parsed word by word."
        ),
        examples=[True, False],
    )
    error_field: str | None = Field(
        default="parse_error",
        min_length=1,
        description="A record that is not logfmt gets this field set to the reason; null leaves it untouched.",
        examples=["parse_error", None],
    )

    @model_validator(mode="after")
    def _check(self) -> ParseLogfmtConfig:
        if self.drop_field and self.target == self.field:
            raise ValueError("drop_field would remove the parsed value itself when target equals field")
        return self


class ParseLogfmt(Processor):
    type_name: ClassVar[str] = "parse_logfmt"
    description: ClassVar[str] = "Parses key=value pairs (logfmt) of a log field into the record or a target field."
    Config: ClassVar[type[ParseLogfmtConfig]] = ParseLogfmtConfig
    accepts: ClassVar[frozenset[str]] = frozenset((LOGS,))
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: ParseLogfmtConfig

    def __init__(self, config: ParseLogfmtConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.parse_errors = 0
        """Records whose field was missing or not logfmt, so far (all kept)."""

    def counters(self) -> dict[str, float]:
        return {"parse_errors": self.parse_errors}

    def process(self, batch: Batch) -> Batch | None:
        cfg = self.config
        source, target, overwrite, drop, bare_keys = cfg.field, cfg.target, cfg.overwrite, cfg.drop_field, cfg.bare_keys
        failed: Failures = []
        for record in batch.records:
            text = text_of(record.get(source))
            if text is None:
                failed.append((record, f"no text in field {source}"))
                continue
            try:
                fields = parse_logfmt(text, bare_keys)
            except LogfmtError as exc:
                failed.append((record, f"invalid logfmt: {exc}"))
                continue
            if not fields:
                failed.append((record, "invalid logfmt: no key=value pairs"))
                continue
            if drop:
                del record[source]
            store_fields(record, fields, target, overwrite)
        if failed:
            self.parse_errors += len(failed)
            tag_failures(failed, cfg.error_field)
        return batch
