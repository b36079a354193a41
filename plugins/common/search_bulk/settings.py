"""Options of the `opensearch` and `elasticsearch` outputs (one model, a `type` per plugin)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector_plugins.common.http_delivery.settings import HttpSettings
from collector_plugins.common.record_templates import check_record_template

_DATE_RUN = re.compile(r"(?<!\{)\{(%[YmdHMS](?:[^{}%]*%[YmdHMS])*)\}")
_DIRECTIVE = re.compile(r"%[YmdHMS]")


def expand_date_placeholders(template: str) -> str:
    """`logs-{%Y.%m.%d}` -> `logs-{%Y}.{%m}.{%d}`: one placeholder per date part, as record templates take them."""
    return _DATE_RUN.sub(lambda m: _DIRECTIVE.sub(lambda d: "{" + d.group(0) + "}", m.group(1)), template)


class Installed(BaseModel):
    """A named JSON document PUT to the cluster when the output starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1, pattern=r"^[a-z0-9][a-z0-9._-]*$", description="Its name in the cluster.", examples=["node-logs"]
    )
    body: dict[str, Any] = Field(
        description="The request body, as the cluster's API documents it.",
        examples=[{"index_patterns": ["logs-*"], "template": {"settings": {"number_of_shards": 1}}}],
    )


class SearchSettings(HttpSettings):
    endpoint: str = Field(
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        description="Base URL of the cluster (scheme, host, port, optional path prefix); `_bulk` is appended.",
        examples=["https://search-logs-abc123.eu-west-1.es.amazonaws.com"],
    )
    index: str = Field(
        "logs-{%Y.%m.%d}",
        min_length=1,
        description="Index (or data stream) name template: record fields `{field}`, host facts `{host}`, the "
        "record's time `{%Y.%m.%d}` (UTC). Field values are lower-cased and characters that index names forbid "
        "become `_`.",
        examples=["logs-{%Y.%m.%d}", "app-{kubernetes.namespace}-{%Y.%m}"],
    )
    op: Literal["create", "index"] = Field(
        "create",
        description="Bulk action: `create` (a document whose `_id` exists is not written again: a replay after a "
        "crash is answered 409 and counted as delivered) or `index` (overwrite).",
        examples=["create"],
    )
    data_stream: bool = Field(
        False,
        description="`index` names a data stream (needs `op: create` and a `@timestamp`; a matching index "
        "template with `data_stream: {}` must exist, e.g. through `index_template`).",
        examples=[False],
    )
    document_id: Literal["stable", "none"] = Field(
        "stable",
        description="`stable`: each document's `_id` is derived from its place in the output's buffer (host and "
        "output name hashed, buffer frame, index), the same when it is replayed, so replays do not duplicate; "
        "`none`: the cluster generates ids (faster ingest, replays duplicate).",
        examples=["stable"],
    )
    timestamp_field: str | None = Field(
        "@timestamp",
        description="Field set to the record's time (ISO 8601, UTC, milliseconds) unless the record has it; "
        "null: none added. Data streams need `@timestamp`.",
        examples=["@timestamp"],
    )
    index_template: Installed | None = Field(
        None,
        description="An index template PUT to `_index_template/NAME` at start (overwrites one of that name).",
        examples=[{"name": "node-logs", "body": {"index_patterns": ["logs-*"], "data_stream": {}}}],
    )

    @field_validator("index")
    @classmethod
    def _check_index(cls, value: str) -> str:
        check_record_template(expand_date_placeholders(value))
        literal = re.sub(r"\{[^{}]*\}", "", value)
        if literal != literal.lower() or re.search(r'[ \\/*?"<>|,#]', literal):
            raise ValueError(f'index {value!r}: index names are lower case without spaces or \\/*?"<>|,#')
        return value

    @model_validator(mode="after")
    def _check_stream(self) -> SearchSettings:
        if self.data_stream and self.op != "create":
            raise ValueError("data streams take `op: create` only")
        if self.data_stream and self.timestamp_field != "@timestamp":
            raise ValueError('data streams need `timestamp_field: "@timestamp"`')
        return self
