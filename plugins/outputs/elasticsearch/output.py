"""`elasticsearch`: documents to Elasticsearch with `_bulk`.

Everything about the request and its answer is shared with `opensearch`
(`common/search_bulk`): stable `_id` per record from the buffer position, only
failed items resent, rejected items to dead letters with the reason, 413 halves
the request. This plugin adds the ILM policy installed at start
(`_ilm/policy/NAME`); API keys are `auth: {type: api_key}`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from collector.api import ComponentContext, OutputConfig
from collector.events import KINDS
from collector_plugins.common.search_bulk.output import BulkOutput
from collector_plugins.common.search_bulk.settings import Installed, SearchSettings
from collector_plugins.outputs.elasticsearch import limits as elasticsearch_limits


class ElasticsearchConfig(SearchSettings, OutputConfig):
    type: Literal["elasticsearch"] = Field(
        description="Sends documents to Elasticsearch with the _bulk API.", examples=["elasticsearch"]
    )
    ilm_policy: Installed | None = Field(
        None,
        description="An index lifecycle policy PUT to `_ilm/policy/NAME` at start (overwrites one of that name).",
        examples=[
            {
                "name": "logs-7d",
                "body": {"policy": {"phases": {"delete": {"min_age": "7d", "actions": {"delete": {}}}}}},
            }
        ],
    )


class ElasticsearchOutput(BulkOutput):
    type_name: ClassVar[str] = "elasticsearch"
    description: ClassVar[str] = "Sends documents to Elasticsearch (_bulk): stable ids, per-item retries, API keys."
    Config: ClassVar[type[ElasticsearchConfig]] = ElasticsearchConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    limits = elasticsearch_limits.LIMITS

    config: ElasticsearchConfig  # type: ignore[assignment]

    def __init__(self, config: ElasticsearchConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)

    async def install(self) -> None:
        if self.config.ilm_policy is not None:
            await self.put(f"_ilm/policy/{self.config.ilm_policy.name}", self.config.ilm_policy.body)
