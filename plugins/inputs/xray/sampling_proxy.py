"""The daemon's TCP side: the centralised-sampling proxy the X-Ray SDKs call, unsigned.

An SDK with centralised sampling sends `POST /GetSamplingRules` and
`POST /SamplingTargets` (the X-Ray REST paths of GetSamplingRules and
GetSamplingTargets) to the daemon's TCP address, without credentials. Like the
AWS daemon, we forward each request to the X-Ray API signed with SigV4 and
return the answer as it is.

Forwarding goes through aiobotocore's `xray` client (`get_sampling_rules`,
`get_sampling_targets`), so the region, endpoint, credential chain, role and
proxy settings are the same as every AWS plugin's. Two botocore event hooks
make the client a byte-exact proxy:

- `before-parameter-build` / `before-call`: the SDK's request body replaces the
  one botocore serialised (from placeholder parameters), before signing, so a
  field newer than our botocore's model still reaches X-Ray;
- `before-parse`: the raw response body is kept beside the parsed one, and that
  raw body (with the API's status code and content type) is what the SDK gets;
  no re-serialisation (timestamps stay in the API's own format).

Only these two paths are served; anything else gets a 404 in the API's error shape.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from aiohttp import web

from collector.accepting import HTTP_SHUTDOWN_TIMEOUT, stop_site
from collector.log import RepeatLimiter, kv
from collector_plugins.common.listening.addresses import LISTEN_BACKLOG

# Request path -> (client method, placeholder parameters that pass botocore's validation).
OPERATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "/GetSamplingRules": ("get_sampling_rules", {}),
    "/SamplingTargets": ("get_sampling_targets", {"SamplingStatisticsDocuments": []}),
}
MAX_REQUEST_BYTES = 1024 * 1024
_RAW_REQUEST = "NodeCollectorRawRequest"
_RAW_RESPONSE = "NodeCollectorRawResponse"
_OPERATION_NAMES = ("GetSamplingRules", "GetSamplingTargets")


def _take_raw_request(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """before-parameter-build: move the SDK's body out of the parameters before they are validated."""
    if _RAW_REQUEST in params:
        context[_RAW_REQUEST] = params.pop(_RAW_REQUEST)


def _put_raw_request(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """before-call: send the SDK's body instead of the serialised placeholder (signing comes after)."""
    body = context.pop(_RAW_REQUEST, None)
    if body is not None:
        params["body"] = body
        if body:
            params["headers"]["Content-Type"] = "application/json"


def _keep_raw_response(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """before-parse: keep the body as X-Ray sent it; botocore adds this dict to the parsed response."""
    customized_response_dict[_RAW_RESPONSE] = response_dict.get("body", b"")


def install_hooks(client: Any) -> None:
    """Make an aiobotocore `xray` client forward raw bodies both ways for the two sampling operations."""
    events = client.meta.events
    for operation in _OPERATION_NAMES:
        events.register(f"before-parameter-build.xray.{operation}", _take_raw_request)
        events.register(f"before-call.xray.{operation}", _put_raw_request)
        events.register(f"before-parse.xray.{operation}", _keep_raw_response)


def _error_body(code: str, message: str) -> bytes:
    import orjson

    return orjson.dumps({"__type": code, "message": message})


class SamplingProxy:
    """An aiohttp server on the daemon's TCP socket, forwarding the sampling calls through `clients`."""

    def __init__(self, clients: Any, log: logging.Logger, component: str) -> None:
        self.clients = clients
        self.log = log
        self.component = component
        self.requests = 0
        """Sampling requests received."""
        self.failures = 0
        """Requests answered with an error because X-Ray could not be reached or asked (not the API's own errors)."""
        self._limiter = RepeatLimiter(interval=60.0)
        self._hooked: Any = None
        self._runner: web.AppRunner | None = None
        self._sock: socket.socket | None = None

    async def start(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        await web.SockSite(self._runner, sock, backlog=LISTEN_BACKLOG).start()  # not aiohttp's default (128)
        self._sock = sock

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await stop_site(runner, [self._sock] if self._sock is not None else [])

    async def _client(self) -> Any:
        client = await self.clients.client("xray")
        if client is not self._hooked:
            install_hooks(client)  # once per client: its event hooks are its own
            self._hooked = client
        return client

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        operation = OPERATIONS.get(request.path)
        if operation is None or request.method != "POST":
            return web.Response(
                status=404,
                body=_error_body("UnknownOperationException", f"{request.method} {request.path} is not proxied"),
                content_type="application/json",
            )
        method, placeholder = operation
        body = await request.read()
        try:
            client = await self._client()
            response = await getattr(client, method)(**placeholder, **{_RAW_REQUEST: body})
        except Exception as exc:
            answer = getattr(exc, "response", None)
            if isinstance(answer, dict) and _RAW_RESPONSE in answer:
                return self._relay(answer)  # the API's own error (throttling, access denied): passed on as is
            self.failures += 1
            self._log_failure(request.path, exc)
            return web.Response(
                status=502,
                body=_error_body("ProxyError", f"X-Ray could not be reached: {type(exc).__name__}: {exc}"),
                content_type="application/json",
            )
        return self._relay(response)

    @staticmethod
    def _relay(answer: dict[str, Any]) -> web.Response:
        meta = answer.get("ResponseMetadata", {})
        headers = meta.get("HTTPHeaders", {}) or {}
        content_type = headers.get("content-type", "application/json")
        return web.Response(
            status=int(meta.get("HTTPStatusCode", 200)),
            body=answer[_RAW_RESPONSE],
            headers={"Content-Type": content_type},
        )

    def _log_failure(self, path: str, exc: BaseException) -> None:
        now, _, suppressed = self._limiter.check(path, type(exc).__name__)
        if now:
            fields: dict[str, Any] = {
                "component": self.component,
                "path": path,
                "error": f"{type(exc).__name__}: {exc}",
            }
            if suppressed:
                fields["repeats_suppressed"] = suppressed
            self.log.warning(
                "sampling request could not be forwarded to X-Ray; the SDK keeps its rules", extra=kv(**fields)
            )
