"""SigV4 for OTLP/HTTP requests to AWS's OTLP endpoints, with botocore's signer and the standard credential chain.

X-Ray's traces endpoint (`https://xray.<region>.amazonaws.com/v1/traces`) signs as service `xray`, CloudWatch
Logs' logs endpoint (`https://logs.<region>.amazonaws.com/v1/logs`) as service `logs` (CloudWatch "OTLP
Endpoints", checked 2026-12-06). The body signed is the body sent (after gzip), and every header sent is
signed (`x-aws-log-group`, `x-aws-log-stream`, `Content-Encoding`), so the endpoint can check all of them.
Credentials come from `AwsClients` (profiles, environment, web identity, ECS and EC2 roles, `role_arn`),
refreshed by botocore before they expire: nothing here holds a key or computes a hash itself.
"""

from __future__ import annotations

from collections.abc import Mapping

from collector_plugins.common.aws.session import AwsClients


class SigV4Signer:
    def __init__(self, clients: AwsClients, service: str) -> None:
        self.clients = clients
        self.service = service

    async def sign(self, url: str, body: bytes, headers: Mapping[str, str]) -> dict[str, str]:
        """`headers` plus `Authorization`, `X-Amz-Date` (and `X-Amz-Security-Token` for temporary credentials)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        credentials = await self.clients.credentials()
        frozen = await credentials.get_frozen_credentials()
        request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
        SigV4Auth(frozen, self.service, await self.clients.region()).add_auth(request)
        return dict(request.headers.items())
