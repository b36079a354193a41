"""The `kubernetes` and `docker` inputs on real files laid out as the kubelet and Docker lay them out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from collector.api import InputContext
from collector_plugins.common.container_paths import docker_container_id, pod_fields
from collector_plugins.inputs.docker.ecs_metadata import ENV_VAR
from collector_plugins.inputs.docker.input import DockerInput, DockerInputConfig
from collector_plugins.inputs.kubernetes.input import KubernetesInput, KubernetesInputConfig
from tests.plugins.conftest import Collected
from tests.plugins.container_runtimes import cri_lines, docker_json_lines
from tests.plugins.ecs_fake import APP_ID, SIDECAR_ID, TASK_ARN, FakeEcsEndpoint, container, ecs_endpoint

__all__ = ["ecs_endpoint"]  # the fixture

FAST = {"glob_interval": 0.05, "poll_interval": 0.02}
POD_UID = "7f1c4b0e-3d2a-4f5e-9b8c-1a2b3c4d5e6f"
OTHER_ID = "b" * 64


def write_lines(path: Path, lines: list[bytes], append: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab" if append else "wb") as f:
        f.write(b"".join(line + b"\n" for line in lines))


@pytest.fixture
async def running(input_ctx: InputContext) -> AsyncIterator[Callable[[Any], Any]]:
    """Start an input on `input_ctx` (as the runtime does: start, then run); stopped at the end of the test."""
    started: list[tuple[Any, asyncio.Task[None]]] = []

    async def start(instance: Any) -> Any:
        await instance.start()
        started.append((instance, asyncio.create_task(instance.run(input_ctx))))
        return instance

    yield start
    input_ctx.stopping.set()
    for instance, task in started:
        await asyncio.wait_for(task, 5)
        await instance.stop()


# ------------------------------------------------------------------ paths


def test_pod_paths() -> None:
    path = f"/var/log/pods/payments_api-7d9f8c6b5-x2x4q_{POD_UID}/api/3.log"
    assert pod_fields(path) == {
        "namespace": "payments",
        "pod_name": "api-7d9f8c6b5-x2x4q",
        "pod_uid": POD_UID,
        "container_name": "api",
        "restart_count": 3,
    }
    for other in (
        f"/var/log/pods/payments_api_{POD_UID}/api/3.log.20261126-100000",  # rotated by the kubelet
        f"/var/log/pods/{POD_UID}/api_3.log",  # the pre-1.14 layout
        f"/var/log/pods/payments_api_x_{POD_UID}/api/3.log",
        f"/var/log/pods/payments__{POD_UID}/api/3.log",
        "/var/log/pods/a_b_c/api/x.log",
        "/var/log/pods/a_b_c/api/٣.log",
        "3.log",
    ):
        assert pod_fields(other) is None, other


def test_docker_paths() -> None:
    assert docker_container_id(f"/var/lib/docker/containers/{APP_ID}/{APP_ID}-json.log") == APP_ID
    assert docker_container_id(f"/var/lib/docker/containers/{APP_ID}/{APP_ID}-json.log.1") is None
    assert docker_container_id(f"/var/lib/docker/containers/{APP_ID}/{OTHER_ID}-json.log") is None
    assert docker_container_id(f"/x/{APP_ID[:12]}/{APP_ID[:12]}-json.log") is None
    assert docker_container_id("json.log") is None


def test_defaults() -> None:
    k8s = KubernetesInputConfig(type="kubernetes")
    assert (k8s.include, k8s.format) == (["/var/log/pods/*/*/*.log"], "cri")
    docker = DockerInputConfig(type="docker")
    assert (docker.include, docker.format) == (["/var/lib/docker/containers/*/*-json.log"], "docker")
    assert DockerInputConfig(type="docker", ecs_metadata_endpoint="http://127.0.0.1:1/v4/x").ecs_refresh_interval == 30
    with pytest.raises(ValueError, match="http"):
        DockerInputConfig(type="docker", ecs_metadata_endpoint="127.0.0.1:1")
    with pytest.raises(ValueError):
        DockerInputConfig(type="docker", format="cri")


# ------------------------------------------------------------------ kubernetes


async def test_kubernetes_pods_partial_lines_both_streams(
    tmp_path: Path, input_ctx: InputContext, collected: Collected, running: Any, wait_for: Any
) -> None:
    pods = tmp_path / "pods"
    api = pods / f"payments_api-7d9f8c6b5-x2x4q_{POD_UID}" / "api" / "0.log"
    long_line = b"L" * 40000
    write_lines(
        api,
        cri_lines(
            [
                ("stdout", b"starting\n" + long_line[:20000]),
                ("stderr", b"warning: slow disk\n" + b"E" * 17000),
                ("stdout", long_line[20000:] + b"\n"),
                ("stderr", b"\n"),
            ]
        ),
    )
    stray = pods / "not-a-pod-dir" / "x" / "0.log"
    write_lines(stray, cri_lines([("stdout", b"hello\n")]))
    config = KubernetesInputConfig(type="kubernetes", include=[f"{pods}/*/*/*.log"], **FAST)
    instance = await running(KubernetesInput(config, input_ctx))
    await wait_for(lambda: len(collected.records) == 5)
    records = {(r["file"], r["stream"], r["message"][:8]): r for r in collected.records}
    by_file = [r for r in collected.records if r["file"] == str(api)]
    assert [(r["stream"], r["message"]) for r in by_file if r["stream"] == "stdout"] == [
        ("stdout", "starting"),
        ("stdout", long_line.decode()),
    ]
    assert [r["message"] for r in by_file if r["stream"] == "stderr"] == ["warning: slow disk", "E" * 17000]
    expected_k8s = {
        "namespace": "payments",
        "pod_name": "api-7d9f8c6b5-x2x4q",
        "pod_uid": POD_UID,
        "container_name": "api",
        "restart_count": 0,
    }
    assert all(r["k8s"] == expected_k8s and r["host"] == "testhost" for r in by_file)
    assert not any(r.get("partial") or r.get("parse_error") for r in by_file)
    stray_record = records[(str(stray), "stdout", "hello")]
    assert "k8s" not in stray_record
    assert instance.counters()["unrecognised_paths"] == 1 and instance.counters()["parse_errors"] == 0


async def test_kubernetes_bad_lines_are_kept_and_counted(
    tmp_path: Path, input_ctx: InputContext, collected: Collected, running: Any, wait_for: Any
) -> None:
    log = tmp_path / f"default_web_{POD_UID}" / "web" / "1.log"
    write_lines(log, [b"2026-11-26T10:00:00Z stdout F ok", b"garbage line", b"2026-11-26T10:00:01Z stdout F ok2"])
    config = KubernetesInputConfig(type="kubernetes", include=[f"{tmp_path}/*/*/*.log"], **FAST)
    instance = await running(KubernetesInput(config, input_ctx))
    await wait_for(lambda: len(collected.records) == 3)
    assert [r["message"] for r in collected.records] == ["ok", "garbage line", "ok2"]
    assert collected.records[1]["parse_error"] == "missing time, stream or tag"
    assert collected.records[1]["k8s"]["restart_count"] == 1
    assert instance.counters()["parse_errors"] == 1


# ------------------------------------------------------------------ docker


def docker_log(root: Path, docker_id: str) -> Path:
    return root / docker_id / f"{docker_id}-json.log"


async def test_docker_without_ecs(
    tmp_path: Path,
    input_ctx: InputContext,
    collected: Collected,
    running: Any,
    wait_for: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    path = docker_log(tmp_path, OTHER_ID)
    write_lines(path, docker_json_lines([("stdout", b"a" * 40000 + b"\n"), ("stderr", b"oops\n")]))
    config = DockerInputConfig(type="docker", include=[f"{tmp_path}/*/*-json.log"], **FAST)
    instance = await running(DockerInput(config, input_ctx))
    await wait_for(lambda: len(collected.records) == 2)
    first, second = collected.records
    assert first["message"] == "a" * 40000 and first["stream"] == "stdout" and first["container_id"] == OTHER_ID
    assert second["message"] == "oops" and second["stream"] == "stderr"
    assert "ecs" not in first and instance.ecs is None
    assert "ecs_metadata_lookups" not in instance.counters()


async def test_docker_in_ecs_gets_task_facts_and_refreshes_for_new_containers(
    tmp_path: Path,
    input_ctx: InputContext,
    collected: Collected,
    running: Any,
    wait_for: Any,
    ecs_endpoint: FakeEcsEndpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_VAR, ecs_endpoint.endpoint)
    write_lines(docker_log(tmp_path, APP_ID), docker_json_lines([("stdout", b"app up\n")]))
    config = DockerInputConfig(type="docker", include=[f"{tmp_path}/*/*-json.log"], ecs_refresh_interval=1, **FAST)
    instance = await running(DockerInput(config, input_ctx))
    await wait_for(lambda: len(collected.records) == 1)
    assert collected.records[0]["ecs"] == {"cluster": "default", "task_arn": TASK_ARN, "container_name": "curl"}
    assert ecs_endpoint.requests == 1, "looked up once, at start"

    # A container the task metadata does not list yet: a lookup is triggered; once the task lists it, its
    # records (from the next chunk on) carry the facts, and so do the records of a container never listed: none.
    ecs_endpoint.document["Containers"].append(container(SIDECAR_ID, "sidecar"))
    sidecar = docker_log(tmp_path, SIDECAR_ID)
    write_lines(sidecar, docker_json_lines([("stdout", b"sidecar 1\n")]))
    await wait_for(lambda: ecs_endpoint.requests == 2 and len(collected.records) == 2)
    await wait_for(lambda: instance.ecs is not None and instance.ecs.get(SIDECAR_ID) is not None)
    write_lines(sidecar, docker_json_lines([("stdout", b"sidecar 2\n")]), append=True)
    await wait_for(lambda: len(collected.records) == 3)
    assert collected.records[2]["ecs"]["container_name"] == "sidecar"
    assert collected.records[2]["container_id"] == SIDECAR_ID
    assert instance.counters()["ecs_metadata_lookups"] == 2 and instance.counters()["ecs_metadata_errors"] == 0


async def test_docker_lookups_for_unknown_containers_are_bounded(
    tmp_path: Path,
    input_ctx: InputContext,
    collected: Collected,
    running: Any,
    wait_for: Any,
    ecs_endpoint: FakeEcsEndpoint,
) -> None:
    config = DockerInputConfig(
        type="docker",
        include=[f"{tmp_path}/*/*-json.log"],
        ecs_metadata_endpoint=ecs_endpoint.endpoint,
        ecs_refresh_interval=60,
        **FAST,
    )
    await running(DockerInput(config, input_ctx))
    unknown = [f"{i:064x}" for i in range(1, 6)]
    for docker_id in unknown:
        write_lines(docker_log(tmp_path, docker_id), docker_json_lines([("stdout", b"hi\n")]))
    await wait_for(lambda: len(collected.records) == len(unknown))
    # One more lookup is due, a minute after the first: not one per unknown container.
    assert ecs_endpoint.requests == 1
    assert all("ecs" not in r and r["container_id"] in unknown for r in collected.records)


async def test_docker_metadata_failure_never_holds_up_records(
    tmp_path: Path,
    input_ctx: InputContext,
    collected: Collected,
    running: Any,
    wait_for: Any,
    ecs_endpoint: FakeEcsEndpoint,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ecs_endpoint.status = 500
    write_lines(docker_log(tmp_path, APP_ID), docker_json_lines([("stdout", b"still flowing\n")]))
    config = DockerInputConfig(
        type="docker", include=[f"{tmp_path}/*/*-json.log"], ecs_metadata_endpoint=ecs_endpoint.endpoint, **FAST
    )
    with caplog.at_level(logging.WARNING):
        instance = await running(DockerInput(config, input_ctx))
        await wait_for(lambda: len(collected.records) == 1)
    assert collected.records[0]["message"] == "still flowing" and "ecs" not in collected.records[0]
    assert instance.counters()["ecs_metadata_errors"] == 1
    assert sum("ECS task metadata unavailable" in r.getMessage() for r in caplog.records) == 1


async def test_docker_slow_metadata_endpoint_delays_start_briefly_then_fields_follow(
    tmp_path: Path,
    input_ctx: InputContext,
    collected: Collected,
    running: Any,
    wait_for: Any,
    ecs_endpoint: FakeEcsEndpoint,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("collector_plugins.inputs.docker.input.START_LOOKUP_TIMEOUT", 0.2)
    ecs_endpoint.delay = 1.0
    write_lines(docker_log(tmp_path, APP_ID), docker_json_lines([("stdout", b"early\n")]))
    config = DockerInputConfig(
        type="docker", include=[f"{tmp_path}/*/*-json.log"], ecs_metadata_endpoint=ecs_endpoint.endpoint, **FAST
    )
    loop = asyncio.get_running_loop()
    began = loop.time()
    instance = await running(DockerInput(config, input_ctx))
    await wait_for(lambda: len(collected.records) == 1)
    assert loop.time() - began < 0.9, "records did not wait for the slow endpoint"
    assert "ecs" not in collected.records[0]
    # The lookup goes on; when it answers, the open file's next records carry the facts.
    await wait_for(lambda: instance.ecs is not None and instance.ecs.get(APP_ID) is not None)
    write_lines(docker_log(tmp_path, APP_ID), docker_json_lines([("stdout", b"later\n")]), append=True)
    await wait_for(lambda: len(collected.records) == 2)
    assert collected.records[1]["ecs"]["container_name"] == "curl"
    assert ecs_endpoint.requests == 1
