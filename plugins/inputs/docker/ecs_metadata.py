"""The ECS task metadata endpoint (version 4): which task and cluster a container belongs to.

Inside an ECS task the agent sets `ECS_CONTAINER_METADATA_URI_V4`;
`${ECS_CONTAINER_METADATA_URI_V4}/task` answers with the task's metadata, documented in
"Amazon ECS task metadata V4 JSON response":

    {"Cluster": "arn:aws:ecs:us-west-2:111122223333:cluster/default",   # or the short name
     "TaskARN": "arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c",
     "Family": "curltest", "Revision": "26", ...,
     "Containers": [{"DockerId": "ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66",
                     "Name": "curl", "DockerName": "ecs-curltest-26-curl-...", ...}, ...]}

`EcsTaskMetadata` keeps, per Docker id, the fields a record gets under `ecs`:
`cluster` (the short name, also when the endpoint gives the ARN, so that it fits
in log group names and S3 keys), `task_arn` and `container_name`.

A failed lookup never holds up logs: it is logged once (WARNING) until the next
success, counted, and records go on without the ECS fields. Lookups are bounded:
callers wait `wait_before_lookup()` so that there is at most one per `min_interval`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import aiohttp

from collector.log import kv

ENV_VAR = "ECS_CONTAINER_METADATA_URI_V4"


def metadata_endpoint(override: str | None) -> str | None:
    """The endpoint to use: the configured one, else `ECS_CONTAINER_METADATA_URI_V4`, else None (not in ECS)."""
    endpoint = override or os.environ.get(ENV_VAR) or None
    return endpoint.rstrip("/") if endpoint else None


def cluster_name(cluster: str) -> str:
    """`arn:aws:ecs:region:account:cluster/name` -> `name`; a short name as it is."""
    if cluster.startswith("arn:") and ":cluster/" in cluster:
        return cluster.rsplit("/", 1)[1]
    return cluster


def containers_of(task: Any) -> dict[str, dict[str, str]]:
    """The `ecs` fields per Docker id from a `/task` response; ValueError if it is not one."""
    if not isinstance(task, dict):
        raise ValueError("the task metadata is not a JSON object")
    cluster, task_arn, containers = task.get("Cluster"), task.get("TaskARN"), task.get("Containers")
    if not isinstance(cluster, str) or not isinstance(task_arn, str) or not isinstance(containers, list):
        raise ValueError("the task metadata lacks Cluster, TaskARN or Containers")
    name = cluster_name(cluster)
    found: dict[str, dict[str, str]] = {}
    for container in containers:
        if not isinstance(container, dict):
            continue
        docker_id, container_name = container.get("DockerId"), container.get("Name")
        if isinstance(docker_id, str) and docker_id and isinstance(container_name, str):
            found[docker_id] = {"cluster": name, "task_arn": task_arn, "container_name": container_name}
    return found


class EcsTaskMetadata:
    """The containers of this ECS task, looked up at `endpoint` + `/task` and refreshed on demand."""

    def __init__(
        self, endpoint: str, log: logging.Logger, component: str, min_interval: float = 30.0, timeout: float = 2.0
    ) -> None:
        self.url = endpoint.rstrip("/") + "/task"
        self.log = log
        self.component = component
        self.min_interval = min_interval
        self.timeout = timeout
        self.containers: dict[str, dict[str, str]] = {}
        """`ecs` fields by Docker id, from the last successful lookup."""
        self.lookups = 0
        """Lookups attempted so far."""
        self.errors = 0
        """Lookups that failed so far."""
        self._last_attempt = float("-inf")
        self._failing = False
        self._session: aiohttp.ClientSession | None = None
        self._running: asyncio.Task[bool] | None = None

    def get(self, docker_id: str) -> dict[str, str] | None:
        return self.containers.get(docker_id)

    def wait_before_lookup(self) -> float:
        """Seconds until a lookup is allowed: at most one per `min_interval`."""
        return max(0.0, self._last_attempt + self.min_interval - time.monotonic())

    async def refresh(self) -> bool:
        """Look the task up again; True when the containers changed. Never raises (failures are logged once)."""
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._lookup())
        # Shielded: a caller that stops waiting (a timeout) leaves the lookup to finish for the others.
        return await asyncio.shield(self._running)

    async def _lookup(self) -> bool:
        self._last_attempt = time.monotonic()
        self.lookups += 1
        try:
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            async with self._session.get(self.url) as response:
                if response.status != 200:
                    raise ValueError(f"HTTP {response.status}")
                task = await response.json(content_type=None)
            containers = containers_of(task)
        except (aiohttp.ClientError, TimeoutError, ValueError, OSError) as exc:
            self.errors += 1
            if not self._failing:
                self._failing = True
                self.log.warning(
                    "ECS task metadata unavailable; records go on without ecs fields (retried when a new "
                    "container appears, failures counted, not logged again until it works)",
                    extra=kv(component=self.component, url=self.url, error=f"{type(exc).__name__}: {exc}"),
                )
            return False
        if self._failing:
            self._failing = False
            self.log.info("ECS task metadata available again", extra=kv(component=self.component, url=self.url))
        changed = containers != self.containers
        self.containers = containers
        return changed

    async def close(self) -> None:
        if self._running is not None and not self._running.done():
            self._running.cancel()
            await asyncio.gather(self._running, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
