"""`AwsClients`: the aiobotocore session and clients of one component.

One session per component, one client per service, created on first use and
reused for every request, closed at stop. Everything about credentials,
signing, endpoints and metadata is botocore's own code: the standard credential
chain, `AWS_ENDPOINT_URL_<SERVICE>`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`, proxies
from the environment. This module only wires the plugin's `AwsSettings` into it:

- botocore's own retries are off (`max_attempts=1`), deliberately: the output
  driver owns retry scheduling. It retries with backoff and full jitter,
  resends only what failed, and paces the whole output with one adaptive send
  rate when the service throttles (`collector/send_rate.py`); botocore's
  retries (and its adaptive mode's per-client bucket) would retry each call
  out of the driver's sight, twice over, and hide the throttled answers the
  send rate needs to see;
- `role_arn` is assumed with STS using the chain's credentials, through
  botocore's refreshing assume-role fetcher (renewed before expiry);
- the user agent names the collector (`node-collector/<version>`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from typing import TYPE_CHECKING, Any

# botocore.exceptions is cheap (no session, loaders or credentials); the rest of aiobotocore and
# botocore is imported where a component first needs it, so loading the plugin registry stays light.
from botocore.exceptions import NoCredentialsError, NoRegionError

from collector import __version__
from collector.api import ComponentContext
from collector.log import kv
from collector_plugins.common.aws.settings import AwsSettings

if TYPE_CHECKING:
    from aiobotocore.credentials import AioDeferredRefreshableCredentials
    from aiobotocore.session import AioSession

USER_AGENT = f"node-collector/{__version__}"


class MissingRegionError(NoRegionError):
    """No region from the config, the environment, the profile or instance metadata."""

    fmt = "{detail}"


def metadata_disabled() -> bool:
    """Whether instance metadata must not be queried (the same switch botocore honours)."""
    return os.environ.get("AWS_EC2_METADATA_DISABLED", "false").strip().lower() == "true"


@functools.cache
def _assumed_role_provider_class() -> type:
    """The provider class, built on first use so that loading this module does not import botocore's chain."""
    from botocore.credentials import CredentialProvider

    class _AssumedRoleProvider(CredentialProvider):  # type: ignore[misc]
        """Puts the assumed role's refreshing credentials first in the session's chain."""

        METHOD = "assume-role"
        CANONICAL_NAME = "node-collector-role-arn"

        def __init__(self, credentials: AioDeferredRefreshableCredentials) -> None:
            super().__init__()
            self._credentials = credentials

        async def load(self) -> AioDeferredRefreshableCredentials:
            return self._credentials

    return _AssumedRoleProvider


class AwsClients:
    """aiobotocore clients for one component: created once per service, reused, closed at stop.

    botocore's own retries are off (max_attempts=1): the output driver retries with backoff and
    resends only what failed. The user agent names the collector (`node-collector/<version>`).
    Safe to call from concurrent tasks; `close()` is idempotent and safe without any client.
    """

    def __init__(self, settings: AwsSettings, ctx: ComponentContext) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import AioSession

        self.settings = settings
        self.ctx = ctx
        self._session = AioSession(profile=settings.profile)
        self._clients: dict[Any, Any] = {}
        self._stack = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()
        self._region: str | None = None
        self._role_ready = False
        proxies = {"http": settings.proxy, "https": settings.proxy} if settings.proxy else None
        self.config = AioConfig(
            user_agent_extra=USER_AGENT,
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            proxies=proxies,
            max_pool_connections=64,
        )

    @property
    def session(self) -> AioSession:
        """The underlying session (for plugins that need botocore's other helpers, e.g. metadata)."""
        return self._session

    async def region(self) -> str:
        """config -> AWS_REGION -> AWS_DEFAULT_REGION -> the profile's region -> IMDSv2 (unless disabled)."""
        if self._region is not None:
            return self._region
        region = (
            self.settings.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or self._session.get_config_variable("region")
        )
        if not region and not metadata_disabled():
            from aiobotocore.utils import AioIMDSRegionProvider

            region = await AioIMDSRegionProvider(session=self._session).provide()
        if not region:
            raise MissingRegionError(
                detail=(
                    "no AWS region: set `region:` in the component's config, or AWS_REGION, or a region in the "
                    "profile; instance metadata was "
                    + ("disabled (AWS_EC2_METADATA_DISABLED)" if metadata_disabled() else "not reachable")
                )
            )
        self._region = region
        return region

    async def client(self, service: str, **config: Any) -> Any:
        """The client for `service` (e.g. "logs", "firehose", "s3"), created on first use.

        `config` overrides this component's botocore Config for that client (e.g.
        `parameter_validation=False` for an output that builds only valid requests);
        one client is kept per service and overrides.
        """
        key = (service, *sorted(config.items())) if config else service
        client = self._clients.get(key)
        if client is not None:
            return client
        async with self._lock:
            client = self._clients.get(key)
            if client is None:
                from aiobotocore.config import AioConfig

                region = await self.region()
                await self._assume_role(region)
                context = self._session.create_client(
                    service,
                    region_name=region,
                    endpoint_url=self.settings.endpoint_url,
                    config=self.config.merge(AioConfig(**config)) if config else self.config,
                    verify=self.settings.ca_bundle,
                )
                client = await self._stack.enter_async_context(context)
                assert client is not None
                self._clients[key] = client
                self.ctx.logger.debug(
                    "AWS client ready",
                    extra=kv(
                        component=self.ctx.name, service=service, region=region, endpoint=client.meta.endpoint_url
                    ),
                )
        return client

    async def credentials(self) -> Any:
        """The chain's credentials (the role assumed first when `role_arn` is set), for requests botocore does not
        make itself but that must be signed (the `otlp` output's SigV4 over OTLP/HTTP)."""
        await self._assume_role(await self.region())
        credentials = await self._session.get_credentials()
        if credentials is None:
            raise NoCredentialsError()
        return credentials

    async def close(self) -> None:
        """Close every client (their HTTP connection pools)."""
        self._clients.clear()
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        await stack.aclose()

    async def _assume_role(self, region: str) -> None:
        """With `role_arn`, put the assumed role's credentials in front of the chain (once)."""
        if self.settings.role_arn is None or self._role_ready:
            return
        from aiobotocore.credentials import AioAssumeRoleCredentialFetcher, AioDeferredRefreshableCredentials
        from aiobotocore.session import AioSession

        # The chain's credentials come from a session of their own: this one's chain gets the role in front.
        source = await AioSession(profile=self.settings.profile).get_credentials()
        if source is None:
            raise NoCredentialsError()
        extra: dict[str, str] = {"RoleSessionName": self.settings.role_session_name}
        if self.settings.external_id:
            extra["ExternalId"] = self.settings.external_id

        def create_sts(service: str, **credentials: Any) -> Any:
            # STS honours AWS_ENDPOINT_URL_STS (VPC endpoints, tests), not the component's endpoint_url.
            return self._session.create_client(
                service, region_name=region, config=self.config, verify=self.settings.ca_bundle, **credentials
            )

        fetcher = AioAssumeRoleCredentialFetcher(
            client_creator=create_sts,
            source_credentials=source,
            role_arn=self.settings.role_arn,
            extra_args=extra,
        )
        credentials = AioDeferredRefreshableCredentials(refresh_using=fetcher.fetch_credentials, method="assume-role")
        resolver = self._session.get_component("credential_provider")
        resolver.insert_before(resolver.providers[0].METHOD, _assumed_role_provider_class()(credentials))
        self._role_ready = True
