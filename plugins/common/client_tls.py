"""TLS for outputs that open connections themselves (`kafka`, `forward`): the option model and its context.

Verified against the system's CAs or `ca_file`, TLS 1.2 at least, an optional client certificate for servers
that require mutual TLS; `verify: false` only for test servers.
"""

from __future__ import annotations

import ssl

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ClientTls(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Connect with TLS.", examples=[True])
    ca_file: str | None = Field(
        None,
        description="PEM file of the CAs that sign the servers' certificates (default: the system's).",
        examples=["/etc/ssl/private-ca.pem"],
    )
    cert_file: str | None = Field(
        None, description="PEM client certificate, for servers that require mutual TLS.", examples=["/etc/tls/me.pem"]
    )
    key_file: str | None = Field(None, description="PEM private key of `cert_file`.", examples=["/etc/tls/me.key"])
    server_name: str | None = Field(
        None,
        description="Name the server's certificate must carry (default: the host name connected to).",
        examples=["aggregator.internal"],
    )
    verify: bool = Field(
        True,
        description="Check the servers' certificates and host names (turn off only for a test server).",
        examples=[True],
    )

    @model_validator(mode="after")
    def _key_with_cert(self) -> ClientTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("`cert_file` and `key_file` go together")
        return self

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
