from __future__ import annotations

import logging

import pytest

from collector.testing import free_port
from collector_plugins.inputs.docker.ecs_metadata import (
    ENV_VAR,
    EcsTaskMetadata,
    cluster_name,
    containers_of,
    metadata_endpoint,
)
from tests.plugins.ecs_fake import (
    APP_ID,
    PAUSE_ID,
    SIDECAR_ID,
    TASK_ARN,
    FakeEcsEndpoint,
    container,
    ecs_endpoint,
    task,
)

__all__ = ["ecs_endpoint"]  # the fixture

LOG = logging.getLogger("test.ecs")


def test_endpoint_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert metadata_endpoint(None) is None
    monkeypatch.setenv(ENV_VAR, "http://127.0.0.1:1/v4/abc/")
    assert metadata_endpoint(None) == "http://127.0.0.1:1/v4/abc"
    assert metadata_endpoint("http://127.0.0.1:2/v4/x") == "http://127.0.0.1:2/v4/x", "the option wins"
    monkeypatch.setenv(ENV_VAR, "")
    assert metadata_endpoint(None) is None


def test_response_parsing() -> None:
    assert cluster_name("arn:aws:ecs:us-west-2:111122223333:cluster/default") == "default"
    assert cluster_name("prod") == "prod"
    found = containers_of(task([container(APP_ID, "curl"), {"DockerId": 3}, "junk"], cluster="prod"))
    assert found == {APP_ID: {"cluster": "prod", "task_arn": TASK_ARN, "container_name": "curl"}}
    for bad in ([], {"Cluster": "c"}, {"Cluster": "c", "TaskARN": "t", "Containers": {}}):
        with pytest.raises(ValueError, match="task metadata"):
            containers_of(bad)


async def test_lookup_maps_docker_ids_to_ecs_fields(ecs_endpoint: FakeEcsEndpoint) -> None:
    metadata = EcsTaskMetadata(ecs_endpoint.endpoint, LOG, "docker_logs")
    try:
        assert await metadata.refresh() is True
        assert metadata.get(APP_ID) == {"cluster": "default", "task_arn": TASK_ARN, "container_name": "curl"}
        assert metadata.get(PAUSE_ID) is not None and metadata.get(SIDECAR_ID) is None
        assert await metadata.refresh() is False, "nothing changed"
        ecs_endpoint.document["Containers"].append(container(SIDECAR_ID, "sidecar"))
        assert await metadata.refresh() is True
        assert metadata.get(SIDECAR_ID) == {"cluster": "default", "task_arn": TASK_ARN, "container_name": "sidecar"}
        assert (metadata.lookups, metadata.errors, ecs_endpoint.requests) == (3, 0, 3)
    finally:
        await metadata.close()


async def test_lookups_for_unknown_ids_are_bounded(ecs_endpoint: FakeEcsEndpoint) -> None:
    metadata = EcsTaskMetadata(ecs_endpoint.endpoint, LOG, "docker_logs", min_interval=60.0)
    try:
        assert metadata.wait_before_lookup() == 0.0, "never looked up yet"
        await metadata.refresh()
        assert 59.0 < metadata.wait_before_lookup() <= 60.0
        metadata.min_interval = 0.0
        assert metadata.wait_before_lookup() == 0.0
    finally:
        await metadata.close()


@pytest.mark.parametrize(
    ("status", "body", "delay"),
    [(500, b"internal error", 0.0), (200, b"{not json", 0.0), (200, b'{"Cluster": 1}', 0.0), (200, None, 1.0)],
    ids=["http_500", "invalid_json", "wrong_shape", "timeout"],
)
async def test_failures_are_logged_once_and_never_raise(
    ecs_endpoint: FakeEcsEndpoint, caplog: pytest.LogCaptureFixture, status: int, body: bytes | None, delay: float
) -> None:
    ecs_endpoint.status, ecs_endpoint.body, ecs_endpoint.delay = status, body, delay
    metadata = EcsTaskMetadata(ecs_endpoint.endpoint, LOG, "docker_logs", timeout=0.3)
    try:
        with caplog.at_level(logging.INFO, logger="test.ecs"):
            assert await metadata.refresh() is False
            assert await metadata.refresh() is False
            assert metadata.get(APP_ID) is None and metadata.errors == 2
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "ECS task metadata unavailable" in warnings[0].getMessage()
            ecs_endpoint.status, ecs_endpoint.body, ecs_endpoint.delay = 200, None, 0.0
            assert await metadata.refresh() is True and metadata.get(APP_ID) is not None
            assert any("available again" in r.getMessage() for r in caplog.records)
    finally:
        await metadata.close()


async def test_nothing_listening() -> None:
    metadata = EcsTaskMetadata(f"http://127.0.0.1:{free_port()}/v4/x", LOG, "docker_logs")
    try:
        assert await metadata.refresh() is False and metadata.errors == 1
    finally:
        await metadata.close()
