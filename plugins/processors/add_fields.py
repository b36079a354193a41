"""`add_fields`: set constant fields on every record, with `{host}`-style templates.

Templates are resolved once, when the processor is built (host facts do not
change while it runs), so the hot path is `record.update(fields)` per record.
Log and trace records get top-level keys; metrics get tags (values as strings).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import ComponentContext, Processor, ProcessorConfig
from collector.events import KINDS, METRICS, Batch
from collector_plugins.templates import check_template, render_template

FieldValue = str | int | float | bool


class AddFieldsConfig(ProcessorConfig):
    type: Literal["add_fields"] = Field(description="Adds constant fields to every record.", examples=["add_fields"])
    fields: dict[str, FieldValue] = Field(
        min_length=1,
        description=(
            "Field names and values to set. String values may use host facts such as `{host}`; write literal "
            "braces as `{{` and `}}`. On metrics, the fields become tags and values are converted to strings."
        ),
        examples=[{"env": "prod", "node": "{host}", "team": "payments"}],
    )
    overwrite: bool = Field(
        default=True,
        description="Replace a field the record already has; false keeps the record's own value.",
        examples=[True, False],
    )

    @field_validator("fields")
    @classmethod
    def _check_fields(cls, fields: dict[str, FieldValue]) -> dict[str, FieldValue]:
        for key, value in fields.items():
            if not key:
                raise ValueError("field names cannot be empty")
            if isinstance(value, str):
                try:
                    check_template(value)
                except ValueError as exc:
                    raise ValueError(f"field {key!r}: {exc}") from None
        return fields


def tag_value(value: FieldValue) -> str:
    """A field value as a metric tag value: booleans as `true`/`false`, numbers as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class AddFields(Processor):
    type_name: ClassVar[str] = "add_fields"
    description: ClassVar[str] = "Adds constant fields (or metric tags) to every record; values may use {host}."
    Config: ClassVar[type[AddFieldsConfig]] = AddFieldsConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    emits: ClassVar[frozenset[str]] = frozenset(KINDS)

    config: AddFieldsConfig

    def __init__(self, config: AddFieldsConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        facts = ctx.host.as_dict()
        resolved: dict[str, FieldValue] = {}
        for key, value in config.fields.items():
            if isinstance(value, str):
                try:
                    value = render_template(value, facts)
                except ValueError as exc:
                    raise ValueError(f"add_fields {ctx.name!r}, field {key!r}: {exc}") from None
            resolved[key] = value
        self.fields = resolved
        """The fields with host facts substituted, as set on log and trace records."""
        self.tags = {key: tag_value(value) for key, value in resolved.items()}
        """The same, as metric tags."""

    def process(self, batch: Batch) -> Batch:
        records = batch.records
        if batch.kind == METRICS:
            tags = self.tags
            # Replace the tags dict instead of updating it: records may share nested containers.
            if self.config.overwrite:
                for m in records:
                    m.tags = {**m.tags, **tags}
            else:
                for m in records:
                    m.tags = {**tags, **m.tags}
            return batch
        fields = self.fields
        if self.config.overwrite:
            for r in records:
                r.update(fields)
        else:
            items = tuple(fields.items())
            for r in records:
                for key, value in items:
                    r.setdefault(key, value)
        return batch
