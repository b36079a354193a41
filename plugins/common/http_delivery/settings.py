"""Options shared by outputs that POST to an HTTP endpoint: auth, TLS, gzip, headers, timeouts.

Mixed into a plugin config (`class XConfig(HttpSettings, OutputConfig)`). Secrets
(passwords, tokens, API keys, header values) are declared secret: never shown in
errors or `collector validate`; give them through `${VAR}`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from collector.config.secrets import SECRET
from collector.units import Duration


class Auth(BaseModel):
    """One way to authenticate; `type` says which fields apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["none", "basic", "bearer", "api_key", "sigv4"] = Field(
        "none",
        description="`basic` (user, password), `bearer` (token), `api_key` (Elasticsearch `Authorization: ApiKey`), "
        "`sigv4` (AWS Signature Version 4 with the standard credential chain: Amazon OpenSearch Service, "
        "OpenSearch Serverless, API Gateway), or `none`.",
        examples=["basic"],
    )
    user: str | None = Field(None, description="User name for `basic`.", examples=["collector"])
    password: str | None = Field(
        None,
        description="Password for `basic`. Secret: give it through `${VAR}`.",
        examples=["${OPENSEARCH_PASSWORD}"],
        json_schema_extra=SECRET,
        repr=False,
    )
    token: str | None = Field(
        None,
        description="Bearer token for `bearer`, or the encoded API key for `api_key` (the base64 of `id:api_key` "
        "that Elasticsearch's create API key call returns as `encoded`). Secret: give it through `${VAR}`.",
        examples=["${ES_API_KEY}"],
        json_schema_extra=SECRET,
        repr=False,
    )
    region: str | None = Field(
        None,
        description="AWS region for `sigv4` (unset: AWS_REGION, AWS_DEFAULT_REGION, the profile's region).",
        examples=["eu-west-1"],
    )
    service: str = Field(
        "es",
        description="SigV4 service name: `es` for Amazon OpenSearch Service domains, `aoss` for OpenSearch "
        "Serverless collections (which also get `x-amz-content-sha256`), `execute-api` for API Gateway.",
        examples=["es", "aoss"],
    )
    profile: str | None = Field(
        None, description="AWS shared-config profile for `sigv4` credentials.", examples=["logging"]
    )

    @model_validator(mode="after")
    def _check(self) -> Auth:
        needs = {"basic": ("user", "password"), "bearer": ("token",), "api_key": ("token",), "sigv4": ()}
        for name in needs.get(self.type, ()):
            if not getattr(self, name):
                raise ValueError(f"auth type {self.type!r} needs `{name}`")
        if self.type != "sigv4" and (self.region or self.profile):
            raise ValueError("`region` and `profile` are for auth type `sigv4`")
        return self


class Tls(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ca_file: str | None = Field(
        None,
        description="PEM file of CA certificates to trust for the server's certificate (a private CA); unset: "
        "the system's trust store.",
        examples=["/etc/collector/ca.pem"],
    )
    cert_file: str | None = Field(
        None, description="PEM client certificate, for servers that ask for one (mutual TLS).", examples=[None]
    )
    key_file: str | None = Field(None, description="PEM private key of `cert_file`.", examples=[None])
    verify: bool = Field(
        True,
        description="Check the server's certificate and host name. Turn off only for a test cluster.",
        examples=[True],
    )


class HttpSettings(BaseModel):
    """Connection options of an HTTP output."""

    auth: Auth = Field(
        Auth(), description="How to authenticate.", examples=[{"type": "basic", "user": "u", "password": "${P}"}]
    )
    tls: Tls = Field(Tls(), description="TLS options for `https://` endpoints.", examples=[{"ca_file": "/etc/ca.pem"}])
    compression: Literal["none", "gzip"] = Field(
        "none",
        description="`gzip` compresses request bodies (`Content-Encoding: gzip`); limits count uncompressed bytes.",
        examples=["gzip"],
    )
    headers: dict[str, str] = Field(
        {},
        description="Extra request headers (not secret: they may show in errors; put tokens in `auth`).",
        examples=[{"X-Tenant": "node-logs"}],
    )
    connect_timeout: Duration = Field(5.0, description="Timeout to open a connection.", examples=["5s"])
    timeout: Duration = Field(30.0, description="Timeout for a whole request, answer included.", examples=["30s"])
