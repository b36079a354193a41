"""A local stand-in for the ECS task metadata endpoint (v4), serving the documented `/task` shape.

ECS cannot run here, so this follows "Amazon ECS task metadata V4 JSON response" and
its EC2 example: `Cluster` (ARN or short name), `TaskARN`, `Family`, `Revision`,
statuses, and `Containers[]` with `DockerId`, `Name`, `DockerName`, `Labels`, ...
It listens on 127.0.0.1 only. Tests can make it fail (`status`, `body`) or slow
(`delay`) and read how often it was asked (`requests`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from collector.testing import free_port

CLUSTER_ARN = "arn:aws:ecs:us-west-2:111122223333:cluster/default"
TASK_ARN = "arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c"
APP_ID = "ee08638adaaf009d78c248913f629e38299471d45fe7dc944d1039077e3424ca"
PAUSE_ID = "598cba581fe3f939459eaba1e071d5c93bb2c49b7d1ba7db6bb19deeb70d8e38"
SIDECAR_ID = "3c1e7b2a9d4f5e6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c"


def container(docker_id: str, name: str) -> dict[str, Any]:
    return {
        "DockerId": docker_id,
        "Name": name,
        "DockerName": f"ecs-curltest-26-{name}-a0e0a0b2d8c2d5f2e401",
        "Image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest",
        "ImageID": "sha256:d691691e9652791a60114e67b365688d20d19940dde7c4736ea30e660d8d3553",
        "Labels": {
            "com.amazonaws.ecs.cluster": CLUSTER_ARN,
            "com.amazonaws.ecs.container-name": name,
            "com.amazonaws.ecs.task-arn": TASK_ARN,
            "com.amazonaws.ecs.task-definition-family": "curltest",
            "com.amazonaws.ecs.task-definition-version": "26",
        },
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": {"CPU": 10, "Memory": 128},
        "CreatedAt": "2020-10-02T00:43:06.202617438Z",
        "StartedAt": "2020-10-02T00:43:06.8513959Z",
        "Type": "NORMAL",
        "Networks": [{"NetworkMode": "awsvpc", "IPv4Addresses": ["10.0.2.106"]}],
    }


def task(containers: list[dict[str, Any]], cluster: str = CLUSTER_ARN) -> dict[str, Any]:
    return {
        "Cluster": cluster,
        "TaskARN": TASK_ARN,
        "Family": "curltest",
        "ServiceName": "MyService",
        "Revision": "26",
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "PullStartedAt": "2020-10-02T00:43:06.202617438Z",
        "PullStoppedAt": "2020-10-02T00:43:06.31288465Z",
        "AvailabilityZone": "us-west-2d",
        "VPCID": "vpc-1234567890abcdef0",
        "LaunchType": "EC2",
        "Containers": containers,
    }


class FakeEcsEndpoint:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/v4/5fb8fcd5-9b1e-4c1e-a4f3-6c5e1f0d2c8b"
        self.document: Any = task([container(PAUSE_ID, "~internal~ecs~pause"), container(APP_ID, "curl")])
        self.status = 200
        self.body: bytes | None = None
        self.delay = 0.0
        self.requests = 0
        self._runner: web.AppRunner | None = None

    async def _task(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)  # not a wait: the slow agent a test asks for
        body = self.body if self.body is not None else orjson.dumps(self.document)
        return web.Response(status=self.status, body=body, content_type="application/json")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/v4/{id}/task", self._task)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def ecs_endpoint() -> AsyncIterator[FakeEcsEndpoint]:
    fake = FakeEcsEndpoint()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
