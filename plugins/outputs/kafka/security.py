"""How the producer connects: TLS and SASL options, and the settings aiokafka takes for them.

- `tls`: a TLS connection (`SSL`, or `SASL_SSL` with `sasl`), verified against the system's CAs or `ca_file`,
  with an optional client certificate (mutual TLS).
- `sasl`: `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` with a username and password, or `AWS_MSK_IAM`: the
  OAUTHBEARER mechanism with tokens from AWS's `aws-msk-iam-sasl-signer-python` (the `msk` extra), signed
  with the standard AWS credential chain for the cluster's region. Amazon MSK requires TLS with IAM, so
  `AWS_MSK_IAM` turns `tls` on.

Nothing here imports aiokafka or the signer at module level: `producer_settings` does, when the output starts.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from collector_plugins.common.client_tls import ClientTls

Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "AWS_MSK_IAM"]


KafkaTls = ClientTls


class KafkaSasl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mechanism: Mechanism = Field(
        description="`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, or `AWS_MSK_IAM` (Amazon MSK with IAM access "
        "control; needs the `msk` extra: `pip install 'node-collector[msk]'`).",
        examples=["SCRAM-SHA-512"],
    )
    username: str | None = Field(None, description="User name (PLAIN and SCRAM).", examples=["collector"])
    password: SecretStr | None = Field(
        None, description="Password (PLAIN and SCRAM; use `${VAR}`).", examples=["${KAFKA_PASSWORD}"]
    )
    region: str | None = Field(
        None,
        description="AWS_MSK_IAM: the cluster's AWS region (default: AWS_REGION / AWS_DEFAULT_REGION).",
        examples=["eu-west-1"],
    )
    aws_profile: str | None = Field(
        None, description="AWS_MSK_IAM: a profile of the shared AWS config to sign with.", examples=["msk-writer"]
    )
    role_arn: str | None = Field(
        None,
        description="AWS_MSK_IAM: a role to assume for signing.",
        examples=["arn:aws:iam::123456789012:role/msk-writer"],
    )

    @model_validator(mode="after")
    def _credentials(self) -> KafkaSasl:
        if self.mechanism == "AWS_MSK_IAM":
            if self.username is not None or self.password is not None:
                raise ValueError("AWS_MSK_IAM signs with AWS credentials: no `username` or `password`")
        else:
            if self.username is None or self.password is None:
                raise ValueError(f"{self.mechanism} needs `username` and `password`")
            if self.region or self.aws_profile or self.role_arn:
                raise ValueError("`region`, `aws_profile` and `role_arn` are for AWS_MSK_IAM only")
        return self


def producer_settings(tls: KafkaTls | None, sasl: KafkaSasl | None) -> dict[str, Any]:
    """aiokafka producer keyword arguments for the connection's security."""
    use_tls = (tls is not None and tls.enabled) or (sasl is not None and sasl.mechanism == "AWS_MSK_IAM")
    settings: dict[str, Any] = {}
    if use_tls:
        settings["ssl_context"] = (tls or ClientTls()).context()
    if sasl is None:
        settings["security_protocol"] = "SSL" if use_tls else "PLAINTEXT"
        return settings
    settings["security_protocol"] = "SASL_SSL" if use_tls else "SASL_PLAINTEXT"
    if sasl.mechanism == "AWS_MSK_IAM":
        settings["sasl_mechanism"] = "OAUTHBEARER"
        settings["sasl_oauth_token_provider"] = msk_token_provider(sasl)
    else:
        assert sasl.username is not None and sasl.password is not None
        settings["sasl_mechanism"] = sasl.mechanism
        settings["sasl_plain_username"] = sasl.username
        settings["sasl_plain_password"] = sasl.password.get_secret_value()
    return settings


def msk_token_provider(sasl: KafkaSasl) -> Any:
    """An aiokafka OAUTHBEARER token provider signing MSK IAM tokens with the signer library."""
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
    except ImportError as exc:
        raise RuntimeError(
            "sasl mechanism AWS_MSK_IAM needs aws-msk-iam-sasl-signer-python: pip install 'node-collector[msk]'"
        ) from exc
    from aiokafka.abc import AbstractTokenProvider

    region = sasl.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise RuntimeError("sasl mechanism AWS_MSK_IAM needs `region` (or AWS_REGION)")

    def generate() -> str:
        if sasl.role_arn:
            token, _expiry = MSKAuthTokenProvider.generate_auth_token_from_role_arn(region, sasl.role_arn)
        elif sasl.aws_profile:
            token, _expiry = MSKAuthTokenProvider.generate_auth_token_from_profile(region, sasl.aws_profile)
        else:
            token, _expiry = MSKAuthTokenProvider.generate_auth_token(region)
        return str(token)

    class MskIamTokens(AbstractTokenProvider):
        async def token(self) -> str:
            # The signer is synchronous (botocore's credential chain may do I/O): keep it off the loop.
            return await asyncio.get_running_loop().run_in_executor(None, generate)

    return MskIamTokens()
