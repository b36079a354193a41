"""`HttpSender`: one aiohttp session per component, requests signed and compressed as configured.

- One connection pool for the component (created at `start`, closed at `stop`),
  keep-alive, as many connections as the output's `concurrency`.
- `gzip` compresses the body once; what is signed is exactly what is sent.
- SigV4 is botocore's `SigV4Auth` over an `AWSRequest` with credentials from
  aiobotocore's standard chain (environment, profile, web identity, ECS task
  role, IMDSv2), refreshed by botocore. For OpenSearch Serverless (`aoss`) the
  payload hash also goes in `x-amz-content-sha256`, which that service requires.
- aiohttp and botocore are imported when the component starts, not when the
  plugin registry loads.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import hashlib
import os
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from collector import __version__
from collector.send_result import SendResult
from collector_plugins.common.http_delivery.settings import HttpSettings, Tls

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = f"node-collector/{__version__}"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def retry_after(headers: dict[str, str], now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None when absent or unreadable."""
    return retry_after_seconds(headers.get("retry-after"), now)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A `Retry-After` header value (delay-seconds or HTTP-date) in seconds, None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def ssl_context(tls: Tls) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if not tls.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class _SigV4:
    """Signs requests with botocore's SigV4Auth; credentials from aiobotocore's chain, refreshed by it."""

    def __init__(self, settings: HttpSettings) -> None:
        from aiobotocore.session import AioSession

        self.auth = settings.auth
        self.session = AioSession(profile=self.auth.profile)
        self.credentials: Any = None
        region = (
            self.auth.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or self.session.get_config_variable("region")
        )
        if not region:
            raise ValueError("sigv4 auth needs a region: `auth.region`, AWS_REGION or the profile's region")
        self.region: str = region

    async def sign(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.exceptions import NoCredentialsError

        if self.credentials is None:
            self.credentials = await self.session.get_credentials()
            if self.credentials is None:
                raise NoCredentialsError()
        frozen = await self.credentials.get_frozen_credentials()
        if self.auth.service == "aoss":
            headers = {**headers, "x-amz-content-sha256": hashlib.sha256(body).hexdigest()}
        request = AWSRequest(method=method, url=url, data=body, headers=headers)
        SigV4Auth(frozen, self.auth.service, self.region).add_auth(request)
        return dict(request.headers.items())


class HttpSender:
    """Sends one request at a time per call; safe for concurrent calls (one shared pool)."""

    def __init__(self, settings: HttpSettings, connections: int = 4) -> None:
        self.settings = settings
        self.connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._signer: _SigV4 | None = None
        headers = {"User-Agent": USER_AGENT, **settings.headers}
        auth = settings.auth
        if auth.type == "basic":
            pair = f"{auth.user}:{auth.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        elif auth.type == "bearer":
            headers["Authorization"] = f"Bearer {auth.token}"
        elif auth.type == "api_key":
            headers["Authorization"] = f"ApiKey {auth.token}"
        if settings.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        self.headers = headers

    async def start(self) -> None:
        import aiohttp

        if self._session is not None:
            return
        if self.settings.auth.type == "sigv4":
            self._signer = _SigV4(self.settings)
        tls = self.settings.tls
        use_ssl: ssl.SSLContext | bool = ssl_context(tls) if (tls.ca_file or tls.cert_file or not tls.verify) else True
        connector = aiohttp.TCPConnector(limit=self.connections, ssl=use_ssl)
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout, sock_connect=self.settings.connect_timeout)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=True)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def compress(self, body: bytes) -> bytes:
        return gzip.compress(body, compresslevel=1, mtime=0) if self.settings.compression == "gzip" else body

    async def request(
        self, method: str, url: str, body: bytes = b"", content_type: str | None = None, *, raw: bool = False
    ) -> Response:
        """Send `body` (compressed here unless `raw`); connection errors and timeouts raise OSError/aiohttp errors."""
        if self._session is None:
            await self.start()
        assert self._session is not None
        headers = dict(self.headers)
        if content_type:
            headers["Content-Type"] = content_type
        if not body or raw:
            headers.pop("Content-Encoding", None)
            data = body
        else:
            data = self.compress(body)
        if self._signer is not None:
            headers = await self._signer.sign(method, url, data, headers)
        async with self._session.request(method, url, data=data, headers=headers) as response:
            payload = await response.read()
            return Response(response.status, {k.lower(): v for k, v in response.headers.items()}, payload)


def classify_status(response: Response) -> SendResult:
    """A whole-request answer: 2xx OK; 429 THROTTLED and 408/5xx RETRY (with Retry-After); other 4xx DROP."""
    status = response.status
    if 200 <= status < 300:
        return SendResult.ok()
    wait = retry_after(response.headers)
    reason = f"HTTP {status}: {response.body[:300].decode('utf-8', 'replace').strip()}"
    if status == 429:
        return SendResult.throttle(reason, wait)
    if status == 408 or status >= 500:
        return SendResult.retry(reason, wait)
    return SendResult.drop(reason)
