"""The AWS layer finds credentials and the region the standard way, and only the standard way.

Each source of the chain is exercised for real: environment, a profile of the
shared files, web identity (IRSA) and `role_arn` through moto's STS, the ECS
container endpoint and EC2 instance metadata (IMDSv2) through small fakes of
their published HTTP APIs on 127.0.0.1 (botocore reads their addresses from
AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_EC2_METADATA_SERVICE_ENDPOINT). The
proof is in the SigV4 `Authorization` header the FaultProxy sees in front of moto:
it names the access key that signed the request.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import NoRegionError

from collector.api import ComponentContext
from collector_plugins.common.aws.metadata import instance_facts
from collector_plugins.common.aws.session import AwsClients
from collector_plugins.common.aws.settings import AwsSettings
from tests.aws_faults import FaultProxy
from tests.moto import MotoServer

CHAIN_ENV = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
]


@pytest.fixture(autouse=True)
def clean_chain(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials, region or files from the machine: each test adds the one source it tests."""
    for name in CHAIN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.endpoint_url) as p:
        yield p


def signing_key(proxy: FaultProxy, operation: str) -> str:
    request = [r for r in proxy.requests if r.operation == operation][-1]
    match = re.search(r"Credential=([^/]+)/", request.headers["authorization"])
    assert match, request.headers["authorization"]
    return match.group(1)


async def call_logs(settings: AwsSettings, ctx: ComponentContext) -> None:
    clients = AwsClients(settings, ctx)
    try:
        logs = await clients.client("logs")
        await logs.describe_log_groups()
    finally:
        await clients.close()


# -- fakes of the ECS container credentials endpoint and EC2 instance metadata (IMDSv2) -------------------


def credentials_document(key: str) -> dict[str, str]:
    expiry = (datetime.now(UTC) + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"AccessKeyId": key, "SecretAccessKey": "secret", "Token": "token", "Expiration": expiry}


class FakeMetadata:
    """IMDSv2 (token required) and the ECS credentials endpoint, as their documentation describes them."""

    TOKEN = "imds-token-123"

    def __init__(self) -> None:
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def reply(self, status: int, body: str, content_type: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                fake.paths.append(f"PUT {self.path}")
                if self.path == "/latest/api/token" and self.headers.get("x-aws-ec2-metadata-token-ttl-seconds"):
                    self.reply(200, FakeMetadata.TOKEN)
                else:
                    self.reply(400, "bad token request")

            def do_GET(self) -> None:
                fake.paths.append(f"GET {self.path}")
                if self.path == "/ecs/credentials":
                    if self.headers.get("Authorization") != "ecs-auth":
                        return self.reply(401, "unauthorized")
                    return self.reply(200, json.dumps(credentials_document("AKIDFROMECS")), "application/json")
                if self.headers.get("x-aws-ec2-metadata-token") != FakeMetadata.TOKEN:
                    return self.reply(401, "IMDSv2 token required")
                documents = {
                    "/latest/meta-data/placement/availability-zone/": "eu-central-1b",
                    "/latest/meta-data/instance-id": "i-0123456789abcdef0",
                    "/latest/meta-data/iam/security-credentials/": "node-role",
                    "/latest/meta-data/iam/security-credentials/node-role": json.dumps(
                        {"Code": "Success", **credentials_document("AKIDFROMIMDS")}
                    ),
                }
                if self.path in documents:
                    return self.reply(200, documents[self.path])
                return self.reply(404, "not found")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def metadata() -> Iterator[FakeMetadata]:
    fake = FakeMetadata()
    yield fake
    fake.close()


# -- credentials -------------------------------------------------------------------------------------------


async def test_environment_credentials(
    proxy: FaultProxy, ctx: ComponentContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    await call_logs(AwsSettings(region="eu-west-1", endpoint_url=proxy.url), ctx)
    assert signing_key(proxy, "DescribeLogGroups") == "AKIDFROMENV"


async def test_profile_from_the_shared_files(proxy: FaultProxy, ctx: ComponentContext, tmp_path: Path) -> None:
    (tmp_path / "aws-credentials").write_text(
        "[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = s\n"
        "[collector]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n"
    )
    (tmp_path / "aws-config").write_text("[profile collector]\nregion = eu-west-1\n")
    await call_logs(AwsSettings(profile="collector", endpoint_url=proxy.url), ctx)
    assert signing_key(proxy, "DescribeLogGroups") == "AKIDPROFILE"
    assert "eu-west-1" in proxy.requests[-1].headers["authorization"]  # the profile's region


async def test_role_arn_is_assumed_on_top_of_the_chain(
    proxy: FaultProxy, ctx: ComponentContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDSOURCE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", proxy.url)
    settings = AwsSettings(
        region="eu-west-1",
        endpoint_url=proxy.url,
        role_arn="arn:aws:iam::123456789012:role/collector",
        role_session_name="node-7",
        external_id="ext-42",
    )
    await call_logs(settings, ctx)
    assume = next(r for r in proxy.requests if r.operation == "AssumeRole")
    assert signing_key(proxy, "AssumeRole") == "AKIDSOURCE"
    body = assume.body.decode()
    assert "RoleSessionName=node-7" in body and "ExternalId=ext-42" in body
    assert "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fcollector" in body
    assert signing_key(proxy, "DescribeLogGroups").startswith("ASIA")  # moto's temporary role keys


async def test_web_identity_irsa(
    proxy: FaultProxy, ctx: ComponentContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.sig")
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", proxy.url)
    await call_logs(AwsSettings(region="eu-west-1", endpoint_url=proxy.url), ctx)
    assert any(r.operation == "AssumeRoleWithWebIdentity" for r in proxy.requests)
    assert signing_key(proxy, "DescribeLogGroups").startswith("ASIA")


async def test_ecs_task_role(
    proxy: FaultProxy, ctx: ComponentContext, metadata: FakeMetadata, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", metadata.url + "ecs/credentials")
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-auth")
    await call_logs(AwsSettings(region="eu-west-1", endpoint_url=proxy.url), ctx)
    assert signing_key(proxy, "DescribeLogGroups") == "AKIDFROMECS"


async def test_instance_metadata_imdsv2_credentials_region_and_instance_id(
    proxy: FaultProxy, ctx: ComponentContext, metadata: FakeMetadata, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "false")
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url)
    clients = AwsClients(AwsSettings(endpoint_url=proxy.url), ctx)
    try:
        assert await clients.region() == "eu-central-1"  # from the availability zone
        logs = await clients.client("logs")
        await logs.describe_log_groups()
        assert await instance_facts(clients.session, {"instance_id", "host"}) == {"instance_id": "i-0123456789abcdef0"}
    finally:
        await clients.close()
    assert signing_key(proxy, "DescribeLogGroups") == "AKIDFROMIMDS"
    assert "PUT /latest/api/token" in metadata.paths  # IMDSv2: a session token first


async def test_metadata_disabled_means_no_lookup(
    ctx: ComponentContext, metadata: FakeMetadata, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url)  # disabled anyway (fixture)
    clients = AwsClients(AwsSettings(), ctx)
    with pytest.raises(NoRegionError, match=r"no AWS region.*AWS_EC2_METADATA_DISABLED"):
        await clients.region()
    assert await instance_facts(clients.session, {"instance_id"}) == {}
    assert metadata.paths == []
    await clients.close()


# -- region ------------------------------------------------------------------------------------------------


async def test_region_order_config_then_environment_then_profile(
    ctx: ComponentContext, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "aws-config").write_text("[default]\nregion = ap-south-1\n")

    async def region(**settings: Any) -> str:
        clients = AwsClients(AwsSettings(**settings), ctx)
        try:
            return await clients.region()
        finally:
            await clients.close()

    assert await region() == "ap-south-1"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    assert await region() == "us-east-2"
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    assert await region() == "eu-north-1"
    assert await region(region="eu-west-3") == "eu-west-3"
