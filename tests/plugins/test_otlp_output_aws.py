"""The `otlp` output's SigV4 signing for AWS's OTLP endpoints, checked by a local server that recomputes it."""

from __future__ import annotations

import gzip
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from pydantic import ValidationError

from collector.events import LOGS, TRACES, Batch
from collector.send_result import Outcome
from collector.testing import component_context, free_port
from collector_plugins.outputs.otlp.output import OtlpConfig, OtlpOutput

KEY, SECRET, TOKEN = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-example"


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def expected_signature(
    url: str, headers: dict[str, str], body: bytes, signed: list[str], region: str, service: str
) -> str:
    """Recompute the request's SigV4 signature with botocore from what the server received."""
    request = AWSRequest(method="POST", url=url, data=body, headers={h: headers[h] for h in signed})
    request.context["timestamp"] = headers["x-amz-date"]
    auth = SigV4Auth(Credentials(KEY, SECRET, TOKEN), service, region)
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)


class SigningEndpoint:
    """An AWS OTLP endpoint stand-in: records each request and whether its SigV4 signature is valid."""

    def __init__(self, path: str, region: str, service: str) -> None:
        self.path, self.region, self.service = path, region, service
        self.seen: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(self.path, self.handle)
        self.runner = web.AppRunner(app, auto_decompress=False)  # the signature covers the body as sent
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        algorithm, _, rest = headers.get("authorization", "").partition(" ")
        parts = dict(p.strip().split("=", 1) for p in rest.split(","))
        signed = parts["SignedHeaders"].split(";")
        url = f"http://127.0.0.1:{self.port}{request.path}"
        valid = parts["Signature"] == expected_signature(url, headers, body, signed, self.region, self.service)
        tampered = expected_signature(url, headers, body + b"x", signed, self.region, self.service)
        self.seen.append(
            {
                "algorithm": algorithm,
                "credential": parts["Credential"],
                "signed": signed,
                "valid": valid,
                "tampered_differs": tampered != parts["Signature"],
                "headers": headers,
                "body": gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body,
            }
        )
        return web.Response(status=200 if valid else 403, body=b"", content_type="application/x-protobuf")


async def test_cloudwatch_logs_otlp_requests_are_signed_with_the_log_group_headers(
    tmp_path: Path, credentials: None
) -> None:
    endpoint = SigningEndpoint("/v1/logs", "eu-west-1", "logs")
    url = await endpoint.start()
    body = {
        "type": "otlp",
        "inputs": ["x"],
        "aws": {
            "service": "logs",
            "region": "eu-west-1",
            "endpoint_url": url,
            "log_group": "/otel/app",
            "log_stream": "node-1",
        },
    }
    out = OtlpOutput(OtlpConfig.model_validate(body), component_context("out", tmp_path))
    await out.start()
    try:
        result = await out.send(Batch(LOGS, [{"timestamp": time.time(), "message": "hello"}]))
    finally:
        await out.stop()
        await endpoint.stop()
    assert result.outcome is Outcome.OK
    (seen,) = endpoint.seen
    assert seen["algorithm"] == "AWS4-HMAC-SHA256" and seen["valid"] and seen["tampered_differs"]
    assert seen["credential"].startswith(f"{KEY}/") and seen["credential"].endswith("/eu-west-1/logs/aws4_request")
    assert {"x-aws-log-group", "x-aws-log-stream", "content-encoding", "host", "x-amz-date"} <= set(seen["signed"])
    assert "x-amz-security-token" in seen["signed"] and seen["headers"]["x-amz-security-token"] == TOKEN
    assert (seen["headers"]["x-aws-log-group"], seen["headers"]["x-aws-log-stream"]) == ("/otel/app", "node-1")
    request = ExportLogsServiceRequest.FromString(seen["body"])
    assert request.resource_logs[0].scope_logs[0].log_records[0].body.string_value == "hello"


async def test_xray_otlp_requests_are_signed_for_xray_and_take_traces_only(tmp_path: Path, credentials: None) -> None:
    endpoint = SigningEndpoint("/v1/traces", "us-west-2", "xray")
    url = await endpoint.start()
    body = {
        "type": "otlp",
        "inputs": ["x"],
        "compression": "none",
        "aws": {"service": "xray", "region": "us-west-2", "endpoint_url": url},
    }
    config = OtlpConfig.model_validate(body)
    assert OtlpOutput.accepted_kinds(config) == {TRACES}
    out = OtlpOutput(config, component_context("out", tmp_path))
    span = {
        "format": "otlp",
        "trace_id": "5759e988bd862e3fe1be46a994272793",
        "span_id": "53995c3f42cd8ad8",
        "name": "GET /",
        "start_time_unix_nano": time.time_ns() - 5,
        "end_time_unix_nano": time.time_ns(),
    }
    await out.start()
    try:
        assert (await out.send(Batch(TRACES, [span]))).outcome is Outcome.OK
        assert (await out.send(Batch(LOGS, [{"message": "x"}]))).outcome is Outcome.DROP
    finally:
        await out.stop()
        await endpoint.stop()
    (seen,) = endpoint.seen
    assert seen["valid"] and seen["credential"].endswith("/us-west-2/xray/aws4_request")
    assert "content-encoding" not in seen["headers"]
    request = ExportTraceServiceRequest.FromString(seen["body"])
    assert request.resource_spans[0].scope_spans[0].spans[0].name == "GET /"


async def test_the_regional_endpoint_is_the_default(tmp_path: Path, credentials: None) -> None:
    body = {"type": "otlp", "inputs": ["x"], "aws": {"service": "xray", "region": "ap-south-1"}}
    out = OtlpOutput(OtlpConfig.model_validate(body), component_context("out", tmp_path))
    transport = await out._transport()
    assert transport.urls["traces"] == "https://xray.ap-south-1.amazonaws.com/v1/traces"
    body = {
        "type": "otlp",
        "inputs": ["x"],
        "aws": {"service": "logs", "region": "eu-west-1", "log_group": "g", "log_stream": "s"},
    }
    out = OtlpOutput(OtlpConfig.model_validate(body), component_context("out", tmp_path))
    transport = await out._transport()
    assert transport.urls["logs"] == "https://logs.eu-west-1.amazonaws.com/v1/logs"
    assert (transport.headers["x-aws-log-group"], transport.headers["x-aws-log-stream"]) == ("g", "s")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"protocol": "grpc", "aws": {"service": "xray"}}, "OTLP/HTTP only"),
        ({"aws": {"service": "logs", "log_group": "g"}}, "needs `log_group` and `log_stream`"),
        ({"aws": {"service": "logs", "log_group": "g", "log_stream": "s"}, "batch": {"max_bytes": "2MiB"}}, "1048576"),
        ({"aws": {"service": "xray"}, "batch": {"max_events": 10_001}}, "10000"),
        ({"protocol": "grpc", "traces_endpoint": "http://x/v1/traces"}, "per-signal endpoints"),
        ({"endpoint": "ftp://x"}, "must start with http"),
    ],
)
def test_invalid_configs_are_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("`", ".").replace("(", r"\(")):
        OtlpConfig.model_validate({"type": "otlp", "inputs": ["x"], **body})


def test_aws_limits_cap_requests(tmp_path: Path) -> None:
    body = {"type": "otlp", "inputs": ["x"], "aws": {"service": "logs", "log_group": "g", "log_stream": "s"}}
    out = OtlpOutput(OtlpConfig.model_validate(body), component_context("out", tmp_path))
    assert (out.max_request_bytes, out.max_items) == (1_048_576, 10_000)
    body = {"type": "otlp", "inputs": ["x"], "aws": {"service": "xray"}}
    out = OtlpOutput(OtlpConfig.model_validate(body), component_context("out", tmp_path))
    assert (out.max_request_bytes, out.max_items, out.max_item_bytes) == (4 * 1024 * 1024, 10_000, 200_000)


async def test_xray_requests_hold_at_most_10000_spans(tmp_path: Path, credentials: None) -> None:
    endpoint = SigningEndpoint("/v1/traces", "us-west-2", "xray")
    url = await endpoint.start()
    body = {"type": "otlp", "inputs": ["x"], "aws": {"service": "xray", "region": "us-west-2", "endpoint_url": url}}
    out = OtlpOutput(OtlpConfig.model_validate(body), component_context("out", tmp_path))
    now = time.time_ns()
    spans = [
        {"format": "otlp", "trace_id": f"{i + 1:032x}", "span_id": f"{i + 1:016x}", "name": "s",
         "start_time_unix_nano": now - 5, "end_time_unix_nano": now}
        for i in range(12_001)
    ]  # fmt: skip
    await out.start()
    try:
        result = await out.send(Batch(TRACES, spans))
    finally:
        await out.stop()
        await endpoint.stop()
    assert result.outcome is Outcome.OK
    counts = [
        sum(
            len(ss.spans)
            for rs in ExportTraceServiceRequest.FromString(s["body"]).resource_spans
            for ss in rs.scope_spans
        )
        for s in endpoint.seen
    ]
    assert all(s["valid"] for s in endpoint.seen)
    assert sum(counts) == 12_001 and max(counts) <= 10_000 and len(counts) == 2
