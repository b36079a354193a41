"""`parse_regex`: the named groups of a regular expression become fields.

The pattern is compiled once, when the config is validated (a bad pattern, or
one without a named group, is a config error). It is searched anywhere in the
field's text: anchor it with `^` / `$` to match whole lines. Raw `bytes`
messages are decoded as UTF-8 (invalid sequences replaced) before matching.

A record whose field does not match is kept as it is and tagged: counted in
`parse_errors` and, unless `error_field` is null, given that field with the
reason. Groups that took no part in the match are left out, not set to null.
A group named `timestamp` is stored as `timestamp_raw` (the record's
`timestamp` stays float epoch seconds; `parse_timestamp` converts it).
"""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from collector.api import ComponentContext, Processor, ProcessorConfig
from collector.events import LOGS, Batch
from collector_plugins.common.parsed_fields import Failures, store_fields, tag_failures, text_of

NO_MATCH = "regex did not match"


class ParseRegexConfig(ProcessorConfig):
    type: Literal["parse_regex"] = Field(
        description="Extracts fields with a regular expression's named groups.", examples=["parse_regex"]
    )
    pattern: str = Field(
        description=(
            "A Python regular expression with named groups `(?P<name>...)`, searched in the field's text; "
            "each group that matched becomes a field. Inline flags such as `(?i)` are allowed."
        ),
        examples=[r"^(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] \"(?P<method>\S+) (?P<path>\S+)"],
    )
    field: str = Field(
        default="message",
        min_length=1,
        description="The top-level field holding the text (str or bytes).",
        examples=["message", "log"],
    )
    target: str | None = Field(
        default=None,
        min_length=1,
        description="null: set the groups as top-level fields; a name: store them as one object under that key.",
        examples=[None, "http"],
    )
    overwrite: bool = Field(
        default=True,
        description="Let extracted fields (or `target`) replace fields the record already has.",
        examples=[True, False],
    )
    drop_field: bool = Field(
        default=False,
        description="Remove the source `field` after a successful match.",
        examples=[True],
    )
    error_field: str | None = Field(
        default="parse_error",
        min_length=1,
        description="A record that does not match gets this field set to the reason; null leaves it untouched.",
        examples=["parse_error", None],
    )

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, pattern: str) -> str:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if not compiled.groupindex:
            raise ValueError("the pattern has no named group: write groups as (?P<name>...)")
        return pattern

    @model_validator(mode="after")
    def _check(self) -> ParseRegexConfig:
        if self.drop_field and (self.target == self.field or self.field in re.compile(self.pattern).groupindex):
            raise ValueError("drop_field would remove what was just extracted: target or a group has the field's name")
        return self


class ParseRegex(Processor):
    type_name: ClassVar[str] = "parse_regex"
    description: ClassVar[str] = "Extracts fields from a log field with a regular expression's named groups."
    Config: ClassVar[type[ParseRegexConfig]] = ParseRegexConfig
    accepts: ClassVar[frozenset[str]] = frozenset((LOGS,))
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: ParseRegexConfig

    def __init__(self, config: ParseRegexConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._search = re.compile(config.pattern).search
        self.parse_errors = 0
        """Records whose field was missing or did not match, so far (all kept)."""

    def counters(self) -> dict[str, float]:
        return {"parse_errors": self.parse_errors}

    def process(self, batch: Batch) -> Batch | None:
        cfg = self.config
        source, target, overwrite, drop = cfg.field, cfg.target, cfg.overwrite, cfg.drop_field
        search = self._search
        failed: Failures = []
        for record in batch.records:
            text = record.get(source)
            if type(text) is not str:
                text = text_of(text)
                if text is None:
                    failed.append((record, f"no text in field {source}"))
                    continue
            match = search(text)
            if match is None:
                failed.append((record, NO_MATCH))
                continue
            groups = {name: value for name, value in match.groupdict().items() if value is not None}
            if drop:
                del record[source]
            store_fields(record, groups, target, overwrite)
        if failed:
            self.parse_errors += len(failed)
            tag_failures(failed, cfg.error_field)
        return batch
