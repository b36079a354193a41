"""`docker`: the `file` input preset for Docker's json-file logs, with ECS task facts when in ECS.

Docker's default log driver writes each container's stdout and stderr to
`/var/lib/docker/containers/<id>/<id>-json.log` (rotated copies get `.1`, `.2`,
... and are not matched); the `docker` format joins the 16 KiB parts of long
lines back. Every record gets `container_id` (the 64-hex id from the path).

In an ECS task (`ECS_CONTAINER_METADATA_URI_V4` set, or `ecs_metadata_endpoint`)
the task metadata endpoint says which containers belong to the task: their
records also get `ecs: {cluster, task_arn, container_name}`. It is looked up
before the first file is opened (bounded by a short timeout), and again when a
container id it does not know appears (once per such id: a container of another
task stays unknown), at most once per `ecs_refresh_interval`. A failed lookup is
logged once and never holds up records, which then go on without the `ecs`
fields; files already open get the fields from their next chunk on.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from collector.api import ComponentContext
from collector.units import Duration
from collector_plugins.common.container_paths import docker_container_id
from collector_plugins.common.ecs_metadata import ENV_VAR, EcsTaskMetadata, metadata_endpoint
from collector_plugins.inputs.file_input import FileInput, FileInputConfig

CONTAINERS_GLOB = "/var/lib/docker/containers/*/*-json.log"
# How long the first lookup may hold up the start: records wait no longer than this for their ecs fields.
START_LOOKUP_TIMEOUT = 2.0
# Unknown container ids remembered so as to look each up once; forgotten all at once past this many.
MAX_REMEMBERED_IDS = 4096


class DockerInputConfig(FileInputConfig):
    type: Literal["docker"] = Field(  # type: ignore[assignment]
        description="Tails Docker's json-file container logs.", examples=["docker"]
    )
    include: list[str] = Field(
        default=[CONTAINERS_GLOB],
        min_length=1,
        description="Where Docker keeps json-file logs: /var/lib/docker/containers/<id>/<id>-json.log.",
        examples=[[CONTAINERS_GLOB]],
    )
    format: Literal["docker"] = Field(
        default="docker",
        description="Always `docker` (json-file): partial lines are joined back, stdout and stderr kept apart.",
        examples=["docker"],
    )
    ecs_metadata_endpoint: str | None = Field(
        default=None,
        description=(
            f"The ECS task metadata (v4) endpoint; null uses `{ENV_VAR}`, which ECS sets in every task. "
            "Without either, records get no ecs fields."
        ),
        examples=[None, "http://127.0.0.1:51678/v4/abcdef"],
    )
    ecs_refresh_interval: Duration = Field(
        default=30.0,
        description="An unknown container id triggers a new metadata lookup at most this often.",
        examples=["30s", "5m"],
    )

    @field_validator("ecs_metadata_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("ecs_metadata_endpoint must be an http:// or https:// URL")
        return value

    @field_validator("ecs_refresh_interval")
    @classmethod
    def _check_interval(cls, value: float) -> float:
        if value < 1.0:
            raise ValueError("ecs_refresh_interval must be at least 1s")
        return value


class DockerInput(FileInput):
    type_name: ClassVar[str] = "docker"
    description: ClassVar[str] = "Tails Docker json-file container logs, with ECS task and container names in ECS."
    Config: ClassVar[type[DockerInputConfig]] = DockerInputConfig

    config: DockerInputConfig

    def __init__(self, config: DockerInputConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        endpoint = metadata_endpoint(config.ecs_metadata_endpoint)
        self.ecs: EcsTaskMetadata | None = (
            None
            if endpoint is None
            else EcsTaskMetadata(endpoint, self.log, ctx.name, min_interval=config.ecs_refresh_interval)
        )
        self._refresh_task: asyncio.Task[None] | None = None
        self._lookup_wanted = False
        self._asked_about: set[str] = set()  # unknown container ids a lookup was already made (or is due) for

    def counters(self) -> dict[str, float]:
        figures = dict(super().counters())
        if self.ecs is not None:
            figures["ecs_metadata_lookups"] = self.ecs.lookups
            figures["ecs_metadata_errors"] = self.ecs.errors
        return figures

    async def start(self) -> None:
        if self.ecs is not None:
            self._schedule_refresh()
            assert self._refresh_task is not None
            # A slow endpoint holds up the start this long at most: records flow, the fields follow the lookup.
            await asyncio.wait([self._refresh_task], timeout=START_LOOKUP_TIMEOUT)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            await asyncio.gather(self._refresh_task, return_exceptions=True)
            self._refresh_task = None
        if self.ecs is not None:
            await self.ecs.close()

    def source_fields(self, path: str) -> dict[str, Any]:
        return self._fields(path, look_up=True)

    def _fields(self, path: str, look_up: bool) -> dict[str, Any]:
        docker_id = docker_container_id(path)
        if docker_id is None:
            return {}
        fields: dict[str, Any] = {"container_id": docker_id}
        if self.ecs is not None:
            known = self.ecs.get(docker_id)
            if known is not None:
                fields["ecs"] = known
            elif look_up and docker_id not in self._asked_about:
                if len(self._asked_about) >= MAX_REMEMBERED_IDS:
                    self._asked_about.clear()
                self._asked_about.add(docker_id)
                self._schedule_refresh()
        return fields

    def _schedule_refresh(self) -> None:
        self._lookup_wanted = True
        if self._refresh_task is not None and not self._refresh_task.done():
            return  # the running refresher does one more lookup, when allowed
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on the event loop: this container stays without ecs fields
            return
        self._refresh_task = loop.create_task(self._refresher())

    async def _refresher(self) -> None:
        """Lookups while some are wanted, each when `ecs_refresh_interval` allows."""
        assert self.ecs is not None
        while self._lookup_wanted:
            self._lookup_wanted = False
            await asyncio.sleep(self.ecs.wait_before_lookup())
            if await self.ecs.refresh():
                # Files already open got their fields before this lookup: their next chunk has the new ones.
                self.refresh_source_fields(lambda path: self._fields(path, look_up=False))
