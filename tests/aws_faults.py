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

Sustained faults, as fleets meet them, apply to a share of ALL requests
(CreateLogGroup and CreateLogStream included), drawn from a seeded generator,
and answer with the throttling error of the service the request is signed for
(`throttling_response`): CloudWatch Logs `ThrottlingException` (400, JSON),
CloudWatch `Throttling` (400; query/XML, or JSON/CBOR with the query-compatible
`x-amzn-query-error` header, whichever protocol botocore chose), Kinesis `ProvisionedThroughputExceededException`
(400, JSON), Firehose `ServiceUnavailableException` (500, JSON: its throughput
signal), S3 `SlowDown` (503, XML), X-Ray `ThrottledException` (429, JSON).
An outage answers every request with a plain 503 for a number of seconds:

    proxy.outage(8.0)                  # from now: 503 for 8 s
    proxy.sustained(0.4, seed=7)       # then and after: 40 % throttled
    proxy.throttled_by_operation()     # {"PutLogEvents": 12, "CreateLogGroup": 3, ...}

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
import random
import re
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

FaultKind = Literal["throttle", "slowdown", "5xx", "reset", "error", "sustained", "outage"]
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
    at: float = field(default_factory=time.monotonic)  # when the proxy received it

    @property
    def service(self) -> str | None:
        """The signing name of the service the request is for (from the SigV4 credential scope)."""
        match = _SCOPE_RE.search(self.headers.get("authorization", ""))
        return match.group(1) if match else None


Matcher = str | Callable[[ProxiedRequest], bool] | None
_SCOPE_RE = re.compile(r"Credential=[^/,]+/\d{8}/[^/,]+/([^/,]+)/aws4_request")


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
        self._outage_until = 0.0  # time.monotonic() before which every request gets a 503
        self._share = 0.0  # sustained: the share of requests throttled
        self._random = random.Random(0)
        self._sustained_match: Matcher = None

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
            self._share = 0.0
            self._outage_until = 0.0

    def outage(self, seconds: float) -> float:
        """Answer every request with a plain 503 for `seconds` from now; returns when it ends (monotonic)."""
        with self._lock:
            self._outage_until = time.monotonic() + seconds
            return self._outage_until

    def sustained(self, share: float, *, seed: int, match: Matcher = None) -> None:
        """Throttle a random `share` of all requests (matching `match`) from now on, with each service's own
        throttling error; the draws come from `random.Random(seed)`. `share=0` stops it."""
        with self._lock:
            self._share = share
            self._random = random.Random(seed)
            self._sustained_match = match

    def throttled_by_operation(self) -> dict[str, int]:
        """Sustained throttling answers so far, by operation (S3 requests by method)."""
        with self._lock:
            seen = list(self.requests)
        counts: dict[str, int] = {}
        for r in seen:
            if r.faulted == "sustained":
                name = r.operation or r.method
                counts[name] = counts.get(name, 0) + 1
        return counts

    def count(self, match: Matcher = None, *, faulted: bool | None = None) -> int:
        """Requests seen that match (and, if given, that were or were not answered with a fault)."""
        with self._lock:
            seen = list(self.requests)
        return sum(1 for r in seen if _matches(match, r) and (faulted is None or (r.faulted is not None) == faulted))

    # -- used by the handler ---------------------------------------------------------------------

    def _take_fault(self, request: ProxiedRequest) -> _Rule | None:
        with self._lock:
            self.requests.append(request)
            if time.monotonic() < self._outage_until:
                self.faults += 1
                request.faulted = "outage"
                return _Rule(0, "outage", None, None)
            if self._share > 0 and _matches(self._sustained_match, request) and self._random.random() < self._share:
                self.faults += 1
                request.faulted = "sustained"
                return _Rule(0, "sustained", None, None, code=request.service or "")
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
        status, extra, payload = _fault_response(rule, request)
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


def _fault_response(rule: _Rule, request: ProxiedRequest) -> tuple[int, list[tuple[str, str]], bytes]:
    kind = rule.kind
    if kind == "sustained":
        return throttling_response(request)
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


_JSON_11 = "application/x-amz-json-1.1"


def throttling_response(request: ProxiedRequest) -> tuple[int, list[tuple[str, str]], bytes]:
    """What the service the request is signed for answers when it throttles (status, headers, body).

    Shapes from each API reference's error list (checked 2026-12-06) and the protocol botocore speaks:
    CloudWatch Logs ThrottlingException 400 (JSON 1.1); CloudWatch `Throttling` 400 (awsQuery XML, or
    JSON 1.0 / rpc-v2-cbor with the query-compatible `x-amzn-query-error` header); Kinesis
    ProvisionedThroughputExceededException 400 (JSON 1.1); Firehose ServiceUnavailableException 500 (JSON 1.1);
    S3 SlowDown 503 (XML); X-Ray ThrottledException 429 (REST-JSON, `x-amzn-ErrorType`).
    """
    service = request.service
    if service == "monitoring":
        # CloudWatch is "query compatible": in JSON or CBOR the code travels in `x-amzn-query-error`.
        query_error = ("x-amzn-query-error", "Throttling;Sender")
        error = {"__type": "com.amazonaws.cloudwatch#Throttling", "message": "Rate exceeded"}
        if request.headers.get("smithy-protocol") == "rpc-v2-cbor":
            headers = [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"), query_error]
            return 400, headers, _cbor_map(error)
        if request.headers.get("content-type", "").startswith("application/x-amz-json"):
            return 400, [("Content-Type", "application/x-amz-json-1.0"), query_error], json.dumps(error).encode()
        xml = (
            b'<ErrorResponse xmlns="http://monitoring.amazonaws.com/doc/2010-08-01/"><Error><Type>Sender</Type>'
            b"<Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
            b"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
        )
        return 400, [("Content-Type", "text/xml")], xml
    if service == "s3":
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>"
        )
        return 503, [("Content-Type", "application/xml")], body
    if service == "xray":
        body = json.dumps({"message": "Rate exceeded"}).encode()
        return 429, [("Content-Type", "application/json"), ("x-amzn-ErrorType", "ThrottledException")], body
    code, status, message = {
        "kinesis": ("ProvisionedThroughputExceededException", 400, "Rate exceeded for shard shardId-000000000000"),
        "firehose": ("ServiceUnavailableException", 500, "Slow down."),
    }.get(service or "", ("ThrottlingException", 400, "Rate exceeded"))
    body = json.dumps({"__type": code, "message": message}).encode()
    return status, [("Content-Type", _JSON_11), ("x-amzn-ErrorType", code)], body


def _cbor_map(items: dict[str, str]) -> bytes:
    """A CBOR map of short text strings (RFC 8949 major types 5 and 3): enough for an error body."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        if n < 256:
            return bytes([major << 5 | 24, n])
        return bytes([major << 5 | 25]) + n.to_bytes(2, "big")

    out = bytearray(head(5, len(items)))
    for key, value in items.items():
        for text in (key, value):
            raw = text.encode()
            out += head(3, len(raw)) + raw
    return bytes(out)
