"""Host facts from EC2 instance metadata (IMDSv2): `{instance_id}` for record templates.

Looked up only when a component's templates use such a fact (`template_host_facts`,
called at start), and never when AWS_EC2_METADATA_DISABLED=true. The endpoint is botocore's
(`AWS_EC2_METADATA_SERVICE_ENDPOINT` / `ec2_metadata_service_endpoint`, IPv4 or
IPv6 mode), so a test points it at a local fake and nothing else changes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError

from collector.log import kv
from collector_plugins.common.aws.session import metadata_disabled
from collector_plugins.common.record_templates import template_names

if TYPE_CHECKING:
    from aiobotocore.session import AioSession

METADATA_FACTS = frozenset({"instance_id"})


@functools.cache
def _fetcher_class() -> type:
    """The fetcher class, built on first use so that loading this module does not import aiobotocore."""
    from aiobotocore.utils import AioIMDSFetcher

    class _InstanceIdFetcher(AioIMDSFetcher):  # type: ignore[misc]
        _URL_PATH = "latest/meta-data/instance-id"

        async def retrieve_instance_id(self) -> str | None:
            try:
                token = await self._fetch_metadata_token()  # IMDSv2 session token (PUT)
                response = await self._get_request(url_path=self._URL_PATH, retry_func=None, token=token)
                return str(await response.text).strip() or None
            except (self._RETRIES_EXCEEDED_ERROR_CLS, BotoCoreError, OSError):
                return None

    return _InstanceIdFetcher


async def instance_facts(session: AioSession, names: set[str]) -> dict[str, str]:
    """The metadata facts among `names` that instance metadata gives; {} when disabled or unreachable."""
    wanted = names & METADATA_FACTS
    if not wanted or metadata_disabled():
        return {}
    from botocore.utils import resolve_imds_endpoint_mode

    fetcher = _fetcher_class()(
        timeout=session.get_config_variable("metadata_service_timeout"),
        num_attempts=session.get_config_variable("metadata_service_num_attempts"),
        config={
            "ec2_metadata_service_endpoint": session.get_config_variable("ec2_metadata_service_endpoint"),
            "ec2_metadata_service_endpoint_mode": resolve_imds_endpoint_mode(session),
            "ec2_metadata_v1_disabled": True,
        },
    )
    instance_id = await fetcher.retrieve_instance_id()
    return {"instance_id": instance_id} if instance_id else {}


async def template_host_facts(
    session: AioSession, templates: Iterable[str], host: dict[str, str], log: logging.Logger, component: str
) -> dict[str, str] | None:
    """`host` plus the metadata facts `templates` use and `host` lacks; None when they use none (keep `host`).

    A fact instance metadata does not give is logged once, and left out: templates render it as missing.
    """
    wanted = {name for template in templates for name in template_names(template)} & METADATA_FACTS - host.keys()
    if not wanted:
        return None
    facts = await instance_facts(session, wanted)
    if wanted - facts.keys():
        log.warning(
            "host facts not available from instance metadata; templates render them as missing",
            extra=kv(component=component, facts=",".join(sorted(wanted - facts.keys()))),
        )
    return {**host, **facts}
