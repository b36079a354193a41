"""`opensearch`: documents to OpenSearch or Amazon OpenSearch Service / Serverless with `_bulk`.

Everything about the request and its answer is shared with `elasticsearch`
(`common/search_bulk`): stable `_id` per record from the buffer position, only
failed items resent, rejected items to dead letters with the reason, 413 halves
the request. This plugin adds the ISM policy installed at start
(`_plugins/_ism/policies/NAME`) and SigV4 for `es` (domains) and `aoss`
(Serverless collections).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from collector.api import ComponentContext, OutputConfig
from collector.events import KINDS
from collector_plugins.common.search_bulk.output import BulkOutput
from collector_plugins.common.search_bulk.settings import Installed, SearchSettings
from collector_plugins.outputs.opensearch import limits as opensearch_limits


class OpenSearchConfig(SearchSettings, OutputConfig):
    type: Literal["opensearch"] = Field(
        description="Sends documents to OpenSearch with the _bulk API.", examples=["opensearch"]
    )
    ism_policy: Installed | None = Field(
        None,
        description="An Index State Management policy PUT to `_plugins/_ism/policies/NAME` at start; one that "
        "already exists is left as it is (ISM answers 409).",
        examples=[
            {
                "name": "logs-7d",
                "body": {
                    "policy": {
                        "description": "delete after 7 days",
                        "default_state": "hot",
                        "states": [
                            {
                                "name": "hot",
                                "actions": [],
                                "transitions": [{"state_name": "delete", "conditions": {"min_index_age": "7d"}}],
                            },
                            {"name": "delete", "actions": [{"delete": {}}], "transitions": []},
                        ],
                        "ism_template": [{"index_patterns": ["logs-*"]}],
                    }
                },
            }
        ],
    )


class OpenSearchOutput(BulkOutput):
    type_name: ClassVar[str] = "opensearch"
    description: ClassVar[str] = (
        "Sends documents to OpenSearch / Amazon OpenSearch Service (_bulk): stable ids, per-item retries, SigV4."
    )
    Config: ClassVar[type[OpenSearchConfig]] = OpenSearchConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    limits = opensearch_limits.LIMITS

    config: OpenSearchConfig  # type: ignore[assignment]

    def __init__(self, config: OpenSearchConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)

    async def install(self) -> None:
        if self.config.ism_policy is not None:
            policy = self.config.ism_policy
            await self.put(f"_plugins/_ism/policies/{policy.name}", policy.body, exists_ok=True)
