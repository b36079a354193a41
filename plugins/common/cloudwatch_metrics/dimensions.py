"""`append_dimensions`: `{aws:InstanceId}` and friends, resolved once at start, like the CloudWatch agent's.

The agent writes `${aws:InstanceId}`; here the `$` is left out because `${...}` is the config file's
environment substitution (`$${aws:InstanceId}`, which that substitution turns into `${aws:InstanceId}`, is
accepted too).

- `InstanceId`, `InstanceType`, `ImageId`: EC2 instance metadata, IMDSv2 only
  (a session token from `PUT /latest/api/token`, then `GET
  /latest/meta-data/...` with it), through botocore's own IMDS fetcher. The
  endpoint is the output's `metadata_endpoint`, so tests point it at a fake on
  127.0.0.1. The link-local default is not asked when
  AWS_EC2_METADATA_DISABLED=true.
- `AutoScalingGroupName`: the instance's `aws:autoscaling:groupName` tag, read
  with EC2 DescribeTags (permission `ec2:DescribeTags`); an instance outside an
  Auto Scaling group gets no such dimension, as with the agent.

A lookup that fails raises `MetadataUnavailable`: the output's start fails and
is retried by the supervisor, so no metric goes out without the dimensions its
alarms expect.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from botocore.exceptions import BotoCoreError

PLACEHOLDER = re.compile(r"^\$?\{aws:([A-Za-z]+)\}$")
FROM_METADATA = {
    "InstanceId": "latest/meta-data/instance-id",
    "InstanceType": "latest/meta-data/instance-type",
    "ImageId": "latest/meta-data/ami-id",
}
FROM_TAGS = {"AutoScalingGroupName": "aws:autoscaling:groupName"}
KNOWN = frozenset(FROM_METADATA) | frozenset(FROM_TAGS)
DEFAULT_METADATA_ENDPOINT = "http://169.254.169.254"


class MetadataUnavailable(RuntimeError):
    pass


def placeholder(value: str) -> str | None:
    """`{aws:InstanceId}` -> "InstanceId"; None for a literal value; ValueError for an unknown placeholder."""
    choices = ", ".join(f"{{aws:{k}}}" for k in sorted(KNOWN))
    match = PLACEHOLDER.match(value)
    if match is None:
        if "{aws:" in value:
            raise ValueError(f"{value!r}: use one of {choices}, or a literal value")
        return None
    name = match.group(1)
    if name not in KNOWN:
        raise ValueError(f"unknown placeholder {value!r}: use one of {choices}")
    return name


@functools.cache
def _fetcher_class() -> type:
    """The fetcher class, built on first use so that loading the plugins does not import aiobotocore."""
    from aiobotocore.utils import AioIMDSFetcher

    class _Metadata(AioIMDSFetcher):  # type: ignore[misc]
        async def get(self, token: str, path: str) -> str:
            response = await self._get_request(url_path=path, retry_func=None, token=token)
            return str(await response.text).strip()

        async def token(self) -> str | None:
            token = await self._fetch_metadata_token()
            return str(token) if token else None

    return _Metadata


async def resolve(
    wanted: dict[str, str], endpoint: str, ec2_client: Any | None, *, timeout: float = 2.0, attempts: int = 2
) -> dict[str, str]:
    """Dimension name -> value for `append_dimensions` (literal values pass through)."""
    out: dict[str, str] = {}
    facts: dict[str, str] = {}
    needed = {name: key for name, value in wanted.items() if (key := placeholder(value)) is not None}
    if needed:
        facts = await _instance_facts(set(needed.values()), endpoint, ec2_client, timeout, attempts)
    for name, value in wanted.items():
        key = needed.get(name)
        if key is None:
            out[name] = value
        elif key in facts:
            out[name] = facts[key]
    return out


async def _instance_facts(
    keys: set[str], endpoint: str, ec2_client: Any | None, timeout: float, attempts: int
) -> dict[str, str]:
    # The default address is only asked where botocore itself would ask it; an explicit endpoint always is.
    env: dict[str, str] | None = {} if endpoint != DEFAULT_METADATA_ENDPOINT else None
    fetcher = _fetcher_class()(
        timeout=timeout, num_attempts=attempts, base_url=endpoint, env=env, config={"ec2_metadata_v1_disabled": True}
    )
    facts: dict[str, str] = {}
    try:
        token = await fetcher.token()
        if token is None:
            raise MetadataUnavailable(f"instance metadata at {endpoint} gave no IMDSv2 token")
        for key in sorted(keys | ({"InstanceId"} if keys & FROM_TAGS.keys() else set())):
            path = FROM_METADATA.get(key)
            if path is not None:
                facts[key] = await fetcher.get(token, path)
    except MetadataUnavailable:
        raise
    except (BotoCoreError, OSError) as exc:
        raise MetadataUnavailable(f"instance metadata at {endpoint} is not reachable: {exc}") from exc
    except Exception as exc:  # botocore's fetcher raises its own classes for HTTP errors
        raise MetadataUnavailable(f"instance metadata at {endpoint}: {type(exc).__name__}: {exc}") from exc
    for key, tag in FROM_TAGS.items():
        if key not in keys:
            continue
        if ec2_client is None:
            raise MetadataUnavailable(f"{key} needs EC2 DescribeTags, but no EC2 client is available")
        response = await ec2_client.describe_tags(
            Filters=[
                {"Name": "resource-id", "Values": [facts["InstanceId"]]},
                {"Name": "key", "Values": [tag]},
            ]
        )
        for item in response.get("Tags", ()):
            if item.get("Key") == tag and item.get("Value"):
                facts[key] = item["Value"]
    return facts
