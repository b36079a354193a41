"""The sampling proxy: the real aws-xray-sdk's unsigned sampling calls reach X-Ray signed, answers come back as sent.

moto has no GetSamplingRules / GetSamplingTargets, so X-Ray is played by a small
fake of those two operations, written to the X-Ray API reference (REST paths,
JSON shapes, epoch-second timestamps, the `__type` error shape). It refuses any
request whose SigV4 signature does not verify: it recomputes the signature with
botocore's signer from the dummy credentials the tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from collector.api import HostFacts, InputContext
from collector.events import Batch
from collector.testing import free_port
from collector_plugins.common.listening.addresses import LISTEN_BACKLOG
from collector_plugins.inputs.xray.input import XRayInput, XRayInputConfig
from tests.descriptors import left_open_by_stop
from tests.plugins.receiver_support import listen_backlog

REGION = "eu-west-1"
RULE = {
    "RuleName": "checkout",
    "RuleARN": "arn:aws:xray:eu-west-1:123456789012:sampling-rule/checkout",
    "ResourceARN": "*",
    "Priority": 1,
    "FixedRate": 0.5,
    "ReservoirSize": 3,
    "ServiceName": "*",
    "ServiceType": "*",
    "Host": "*",
    "HTTPMethod": "*",
    "URLPath": "*",
    "Version": 1,
    "Attributes": {},
}
DEFAULT_RULE = {
    **RULE,
    "RuleName": "Default",
    "Priority": 10000,
    "FixedRate": 0.05,
    "ReservoirSize": 1,
    "RuleARN": "arn:aws:xray:eu-west-1:123456789012:sampling-rule/Default",
}


class FakeXRay:
    """GetSamplingRules and GetSamplingTargets as the X-Ray API reference describes them, SigV4 checked."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes, dict[str, str]]] = []
        self.bad_signatures = 0
        self.next_error: tuple[int, bytes] | None = None
        self.rules_body = orjson.dumps(
            {
                "SamplingRuleRecords": [
                    {"SamplingRule": RULE, "CreatedAt": 1.7e9, "ModifiedAt": 1700000000.5},
                    {"SamplingRule": DEFAULT_RULE, "CreatedAt": 1.7e9, "ModifiedAt": 1.7e9},
                ]
            }
        ).replace(b",", b", ")  # spacing a re-serialising proxy would lose

    def targets_body(self, statistics: list[dict[str, Any]]) -> bytes:
        return orjson.dumps(
            {
                "SamplingTargetDocuments": [
                    {
                        "RuleName": s["RuleName"],
                        "FixedRate": 0.25,
                        "ReservoirQuota": 7,
                        "ReservoirQuotaTTL": int(time.time()) + 60,
                        "Interval": 10,
                    }
                    for s in statistics
                ],
                "LastRuleModification": 1600000000,
                "UnprocessedStatistics": [],
            }
        )

    def signature_ok(self, request: web.Request, body: bytes) -> bool:
        authorization = request.headers.get("Authorization", "")
        try:
            algorithm, rest = authorization.split(" ", 1)
            parts = dict(p.strip().split("=", 1) for p in rest.split(","))
            access_key, date, region, service, terminal = parts["Credential"].split("/")
        except ValueError:
            return False
        if (algorithm, access_key, region, service, terminal) != (
            "AWS4-HMAC-SHA256",
            "testing",
            REGION,
            "xray",
            "aws4_request",
        ):
            return False
        signed = parts["SignedHeaders"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return False
        again = AWSRequest(
            method=request.method,
            url=f"http://{request.host}{request.path_qs}",
            data=body,
            headers={name: request.headers[name] for name in signed},
        )
        again.context["timestamp"] = request.headers["X-Amz-Date"]
        auth = SigV4Auth(Credentials("testing", "testing"), "xray", REGION)
        expected = auth.signature(auth.string_to_sign(again, auth.canonical_request(again)), again)
        return date == again.context["timestamp"][:8] and expected == parts["Signature"]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((request.path, body, dict(request.headers)))
        if not self.signature_ok(request, body):
            self.bad_signatures += 1
            return web.json_response({"__type": "InvalidSignatureException", "message": "bad signature"}, status=403)
        if self.next_error is not None:
            status, error, self.next_error = *self.next_error, None
            return web.Response(status=status, body=error, content_type="application/json")
        if request.path == "/GetSamplingRules":
            return web.Response(body=self.rules_body, content_type="application/json")
        statistics = orjson.loads(body)["SamplingStatisticsDocuments"]
        return web.Response(body=self.targets_body(statistics), content_type="application/json")


@contextlib.asynccontextmanager
async def fake_xray() -> AsyncIterator[tuple[FakeXRay, str]]:
    fake = FakeXRay()
    app = web.Application()
    app.router.add_post("/GetSamplingRules", fake.handle)
    app.router.add_post("/SamplingTargets", fake.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def collector_input(tmp_path: Path, endpoint_url: str) -> AsyncIterator[tuple[XRayInput, int, int, list[Batch]]]:
    udp, tcp = free_port(socket.SOCK_DGRAM), free_port()
    batches: list[Batch] = []

    async def emit(batch: Batch) -> None:
        batches.append(batch)

    ctx = InputContext("xray", logging.getLogger("test.xray"), tmp_path, HostFacts("h"), emit, asyncio.Event())
    config = XRayInputConfig(
        type="xray", listen=f"udp:127.0.0.1:{udp} tcp:127.0.0.1:{tcp}", region=REGION, endpoint_url=endpoint_url
    )
    instance = XRayInput(config, ctx)
    await instance.start()
    task = asyncio.create_task(instance.run(ctx))
    try:
        yield instance, udp, tcp, batches
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(task, 5)
        await instance.stop()


# A small instrumented app: centralised sampling through the daemon address, as deployed.
APP = r"""
import json, sys, time
from aws_xray_sdk.core import xray_recorder

xray_recorder.configure(sampling=True, context_missing="LOG_ERROR", service="shop")
sampler = xray_recorder.sampler
sampler._target_poller._interval = 1  # the SDK polls targets every 10 s; shortened for the test
decisions = []
rule = None
deadline = time.time() + 25
while time.time() < deadline:
    segment = xray_recorder.begin_segment("shop")
    decisions.append(segment.sampled)
    xray_recorder.end_segment()
    rule = next((r for r in sampler._cache.rules if r.name == "checkout"), None)
    if rule is not None and rule.reservoir.quota is not None:
        break
    time.sleep(0.05)  # not a wait: the app's pace, 20 requests a second while the SDK polls
print(json.dumps({
    "rules": [[r.name, r.priority, r.rate] for r in sampler._cache.rules],
    "quota": rule.reservoir.quota if rule else None,
    "ttl": rule.reservoir.TTL if rule else None,
    "fixed_rate_after_targets": rule.rate if rule else None,
    "sampled": sum(1 for d in decisions if d),
}))
"""


@pytest.mark.slow
async def test_sdk_centralised_sampling_through_the_proxy(tmp_path: Path) -> None:
    async with fake_xray() as (fake, endpoint), collector_input(tmp_path, endpoint) as (xray_in, udp, tcp, batches):
        env = dict(os.environ, AWS_XRAY_DAEMON_ADDRESS=f"udp:127.0.0.1:{udp} tcp:127.0.0.1:{tcp}")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", APP, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 40)
        assert process.returncode == 0, stderr.decode()
    result = orjson.loads(stdout.splitlines()[-1])
    # The SDK parsed the relayed rules (priority order) and the relayed targets (quota, TTL, rate).
    assert result["rules"] == [["checkout", 1, 0.25], ["Default", 10000, 0.05]]
    assert result["quota"] == 7 and result["ttl"] > time.time()
    paths = [path for path, _, _ in fake.requests]
    assert "/GetSamplingRules" in paths and "/SamplingTargets" in paths
    assert fake.bad_signatures == 0
    # The SDK's own statistics body reached X-Ray unchanged (its client id, integer timestamps).
    targets_body = orjson.loads(next(body for path, body, _ in fake.requests if path == "/SamplingTargets"))
    (statistics,) = targets_body["SamplingStatisticsDocuments"]
    assert statistics["RuleName"] == "checkout" and isinstance(statistics["Timestamp"], int)
    assert len(statistics["ClientID"]) == 24
    assert xray_in.counters()["sampling_requests"] == len(fake.requests)
    # Sampled segments of the app went to the UDP side as usual.
    assert sum(len(b) for b in batches) == result["sampled"]


async def test_bodies_are_relayed_byte_for_byte_and_errors_passed_on(tmp_path: Path) -> None:
    async with (
        fake_xray() as (fake, endpoint),
        collector_input(tmp_path, endpoint) as (xray_in, _, tcp, _),
        aiohttp.ClientSession() as http,
    ):
        proxy = f"http://127.0.0.1:{tcp}"
        request = b'{ "NextToken" :"page-2"}'
        async with http.post(f"{proxy}/GetSamplingRules", data=request) as response:
            assert response.status == 200
            assert await response.read() == fake.rules_body
        path, forwarded, headers = fake.requests[-1]
        assert (path, forwarded) == ("/GetSamplingRules", request)
        assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert "node-collector/" in headers["User-Agent"]

        # A field newer than our botocore's model still reaches X-Ray: the SDK's body is not re-serialised.
        newer = b'{"SamplingStatisticsDocuments": [], "SomeFutureField": {"a": 1}}'
        async with http.post(f"{proxy}/SamplingTargets", data=newer) as response:
            assert response.status == 200
            assert orjson.loads(await response.read())["LastRuleModification"] == 1600000000
        assert fake.requests[-1][1] == newer

        throttled = b'{"__type":"ThrottledException","message":"Rate exceeded"}'
        fake.next_error = (429, throttled)
        async with http.post(f"{proxy}/GetSamplingRules", data=b"{}") as response:
            assert (response.status, await response.read()) == (429, throttled)

        async with http.post(f"{proxy}/TraceSegments", data=b"{}") as response:
            assert response.status == 404
        assert fake.bad_signatures == 0
        assert xray_in.counters()["sampling_failures"] == 0


async def test_unreachable_x_ray_answers_502_and_is_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with collector_input(tmp_path, closed) as (xray_in, _, tcp, _), aiohttp.ClientSession() as http:
        for _ in range(3):
            async with http.post(f"http://127.0.0.1:{tcp}/GetSamplingRules", data=b"{}") as response:
                assert response.status == 502
                assert orjson.loads(await response.read())["__type"] == "ProxyError"
    assert xray_in.counters()["sampling_failures"] == 3
    warnings = [r for r in caplog.records if "could not be forwarded" in r.getMessage()]
    assert len(warnings) == 1  # once per interval, not per request


async def test_the_proxy_keeps_its_listen_backlog_and_closes_connections_being_accepted(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with collector_input(tmp_path, closed) as (xray_in, _, tcp, _):
        expected = min(LISTEN_BACKLOG, int(Path("/proc/sys/net/core/somaxconn").read_text()))
        assert listen_backlog(tcp) == expected  # aiohttp's SockSite would listen(128) again over it
        proxy = xray_in._proxy
        assert proxy is not None
        leftover = await left_open_by_stop(tcp, proxy.stop, turns=2)  # the turn in which the loop has accepted them
        assert leftover == set(), f"accepted sockets still open after stop(): {leftover}"
