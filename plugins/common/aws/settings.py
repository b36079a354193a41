"""Connection options every AWS plugin shares (`AwsSettings`), mixed into the plugin's config model.

Credentials are never options here: they come from the standard chain that
botocore implements (environment, shared config and credentials files and
their profiles, web identity / IRSA, the ECS task role, EC2 instance metadata
with IMDSv2). `role_arn` assumes a role on top of whatever the chain found.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.config.secrets import SECRET
from collector.units import Duration

_ROLE_ARN_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
_SESSION_NAME_RE = re.compile(r"^[\w+=,.@-]{2,64}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")


class AwsSettings(BaseModel):
    """Connection options every AWS plugin has. Mix into a plugin config: `class XConfig(AwsSettings, OutputConfig)`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = Field(
        None,
        description=(
            "AWS region. Unset: AWS_REGION, AWS_DEFAULT_REGION, the profile's region, then the instance "
            "metadata (IMDSv2) unless AWS_EC2_METADATA_DISABLED=true."
        ),
        examples=["eu-west-1"],
    )
    endpoint_url: str | None = Field(
        None,
        description="Send requests here instead of the public endpoint: a VPC endpoint, LocalStack, a test server.",
        examples=["https://vpce-0abc-logs.eu-west-1.vpce.amazonaws.com", "http://127.0.0.1:4566"],
    )
    profile: str | None = Field(
        None,
        description="A profile of the shared config and credentials files (else AWS_PROFILE, else `default`).",
        examples=["collector"],
    )
    role_arn: str | None = Field(
        None,
        description="An IAM role to assume with STS on top of the credential chain (refreshed before it expires).",
        examples=["arn:aws:iam::123456789012:role/collector"],
    )
    role_session_name: str = Field(
        "node-collector",
        description="The session name of the assumed role (shows in CloudTrail).",
        examples=["node-collector"],
    )
    external_id: str | None = Field(
        None, description="The external ID the role's trust policy requires, if any.", examples=["a1b2c3"]
    )
    proxy: str | None = Field(
        None,
        description="HTTP(S) proxy URL for AWS requests (else HTTPS_PROXY / NO_PROXY from the environment). "
        "Secret (it may carry credentials): never shown in errors; give credentials through `${VAR}`.",
        examples=["http://${PROXY_USER}:${PROXY_PASSWORD}@proxy.internal:3128"],
        json_schema_extra=SECRET,
        repr=False,
    )
    ca_bundle: str | None = Field(
        None,
        description="A PEM file of CA certificates to trust (private CAs, TLS-inspecting proxies).",
        examples=["/etc/pki/tls/certs/corp-ca.pem"],
    )
    connect_timeout: Duration = Field(5.0, description="Timeout to open a connection.", examples=["5s"])
    read_timeout: Duration = Field(30.0, description="Timeout waiting for a response.", examples=["30s"])

    @field_validator("region")
    @classmethod
    def _check_region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION_RE.match(value):
            raise ValueError(f"{value!r} is not an AWS region name (like eu-west-1)")
        return value

    @field_validator("endpoint_url", "proxy")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("role_arn")
    @classmethod
    def _check_role_arn(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN_RE.match(value):
            raise ValueError(f"{value!r} is not an IAM role ARN (arn:aws:iam::123456789012:role/NAME)")
        return value

    @field_validator("role_session_name")
    @classmethod
    def _check_session_name(cls, value: str) -> str:
        if not _SESSION_NAME_RE.match(value):
            raise ValueError("role_session_name must be 2-64 characters of letters, digits and +=,.@_-")
        return value
