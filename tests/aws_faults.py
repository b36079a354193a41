"""`FaultProxy`: an HTTP proxy between an AWS client and the moto server that fails chosen requests.

The client's `endpoint_url` points at the proxy, which forwards every request
to moto unchanged, except the next `n` requests matching a rule, which it
answers itself, the way AWS answers them:

- `kind="throttle"`: HTTP 400, JSON body `{"__type": "ThrottlingException", ...}`
  and `x-amzn-ErrorType` (what JSON-protocol services such as CloudWatch Logs,
  Firehose and Kinesis send; botocore reports code ThrottlingException);
- `kind="slowdown"`: HTTP 503 with the S3 XML error `SlowDown`;
- `kind="5xx"`: HTTP 503 with a plain-text body (a load balancer's answer);
- `kind="reset"`: the connection is closed without any answer;
- `kind="error"`: HTTP `status` (400) with a JSON-protocol error of `code` and
  `message` (e.g. `code="AccessDeniedException"` to test permission handling).

    with FaultProxy(moto.endpoint_url) as proxy:
        proxy.fail_next(2, kind="throttle", match="PutLogEvents")
        ...  # client with endpoint_url=proxy.url
        assert proxy.count("PutLogEvents") == 3
        assert proxy.faults == 2

`match` is an operation name (compared with the `X-Amz-Target` operation or
the query protocol's `Action`), a path prefix starting with "/", or a callable
over the `ProxiedRequest`; None matches everything. Every request is recorded
in `requests` (method, path, operation, headers, status, whether faulted), so
tests can assert on headers and on the number of calls (no retry storms).
The proxy runs in a thread (usable from sync, async and subprocess tests) and
binds to 127.0.0.1 only. It also works as a forward HTTP proxy (a client's
`proxy` setting; absolute-form request targets), and serves HTTPS when given a
certificate (`certfile`, `keyfile`) to test custom CA bundles.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

FaultKind = Literal["throttle", "slowdown", "5xx", "reset", "error"]
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class ProxiedRequest:
    method: str
    path: str
    operation: str | None  # "PutLogEvents" from X-Amz-Target or Action=, else None
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int = 0
    faulted: FaultKind | None = None


Matcher = str | Callable[[ProxiedRequest], bool] | None


@dataclass
class _Rule:
    remaining: int
    kind: FaultKind
    match: Matcher
    retry_after: float | None
    code: str = ""
    status: int = 400
    message: str = ""


@dataclass
class FaultProxy:
    upstream: str
    certfile: str | None = None
    keyfile: str | None = None
    requests: list[ProxiedRequest] = field(default_factory=list)
    faults: int = 0

    def __post_init__(self) -> None:
        parsed = urllib.parse.urlsplit(self.upstream)
        self._upstream_host = parsed.hostname or "127.0.0.1"
        self._upstream_port = parsed.port or 80
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.certfile:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.certfile, self.keyfile)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the proxy first"
        scheme = "https" if self.certfile else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(
        self,
        n: int,
        kind: FaultKind = "throttle",
        *,
        match: Matcher = None,
        retry_after: float | None = None,
        code: str = "",
        status: int = 400,
        message: str = "",
    ) -> None:
        """Answer the next `n` requests matching `match` with a `kind` fault (rules apply in the order added)."""
        if kind not in ("throttle", "slowdown", "5xx", "reset", "error"):
            raise ValueError(f"unknown fault kind {kind!r}")
        if kind == "error" and not code:
            raise ValueError('kind="error" needs the AWS error code, e.g. code="AccessDeniedException"')
        with self._lock:
            self._rules.append(_Rule(n, kind, match, retry_after, code, status, message or code))

    def clear(self) -> None:
        """Forget pending faults and recorded requests."""
        with self._lock:
            self._rules.clear()
            self.requests.clear()
            self.faults = 0

    def count(self, match: Matcher = None, *, faulted: bool | None = None) -> int:
        """Requests seen that match (and, if given, that were or were not answered with a fault)."""
        with self._lock:
            seen = list(self.requests)
        return sum(1 for r in seen if _matches(match, r) and (faulted is None or (r.faulted is not None) == faulted))

    # -- used by the handler ---------------------------------------------------------------------

    def _take_fault(self, request: ProxiedRequest) -> _Rule | None:
        with self._lock:
            self.requests.append(request)
            for rule in self._rules:
                if rule.remaining > 0 and _matches(rule.match, request):
                    rule.remaining -= 1
                    self.faults += 1
                    request.faulted = rule.kind
                    return rule
        return None

    def _forward(self, request: ProxiedRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k not in _HOP_BY_HOP}
            headers["content-length"] = str(len(request.body))
            conn.request(request.method, request.path, body=request.body, headers=headers)
            response = conn.getresponse()
            body = response.read()
            return response.status, response.getheaders(), body
        finally:
            conn.close()


def _operation(method: str, path: str, headers: dict[str, str], body: bytes) -> str | None:
    target = headers.get("x-amz-target")
    if target:
        return target.rsplit(".", 1)[-1]
    query = urllib.parse.urlsplit(path).query
    if "Action=" in query:
        return urllib.parse.parse_qs(query).get("Action", [None])[0]
    if headers.get("content-type", "").startswith("application/x-www-form-urlencoded") and b"Action=" in body:
        return urllib.parse.parse_qs(body.decode("utf-8", "replace")).get("Action", [None])[0]
    return None


def _matches(match: Matcher, request: ProxiedRequest) -> bool:
    if match is None:
        return True
    if callable(match):
        return bool(match(request))
    if match.startswith("/"):
        return request.path.startswith(match)
    return request.operation == match


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read `requests` instead
        return

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path
        if path.startswith(("http://", "https://")):  # absolute form: we are the client's forward proxy
            parts = urllib.parse.urlsplit(path)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            headers["x-forwarded-by-proxy"] = "1"
        request = ProxiedRequest(self.command, path, _operation(self.command, path, headers, body), headers, body)
        rule = self.owner._take_fault(request)
        if rule is None:
            status, response_headers, payload = self.owner._forward(request)
            request.status = status
            self._reply(
                status,
                [(k, v) for k, v in response_headers if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"],
                payload,
            )
            return
        if rule.kind == "reset":
            request.status = 0
            self.close_connection = True
            self.connection.close()
            return
        status, extra, payload = _fault_response(rule)
        if rule.retry_after is not None:
            extra.append(("Retry-After", f"{rule.retry_after:g}"))
        request.status = status
        self._reply(status, extra, payload)

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _handle


def _fault_response(rule: _Rule) -> tuple[int, list[tuple[str, str]], bytes]:
    kind = rule.kind
    if kind == "error":
        body = json.dumps({"__type": rule.code, "message": rule.message}).encode()
        return rule.status, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", rule.code)], body
    if kind == "throttle":
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        return 400, [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", "ThrottlingException")], body
    if kind == "slowdown":
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>"
        )
        return 503, [("Content-Type", "application/xml")], body
    return 503, [("Content-Type", "text/plain")], b"Service Unavailable"
