"""`kubernetes`: the `file` input preset for the container logs the kubelet keeps under /var/log/pods.

The kubelet has every container runtime (containerd, CRI-O) write a container's
stdout and stderr to `/var/log/pods/<namespace>_<pod name>_<pod uid>/<container
name>/<restart count>.log` in the CRI format (rotated copies get a date suffix
and are not matched). Those five facts (see `container_paths.pod_fields`) become
the nested `k8s` field of every record from the file: `{k8s.namespace}` in an
output's template reaches them.

Everything else is the `file` input's: checkpoints, rotation, backpressure,
the `cri` format joining partial lines (`stream` kept per record).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from collector.api import ComponentContext
from collector.log import kv
from collector_plugins.common.container_paths import pod_fields
from collector_plugins.inputs.file_input import FileInput, FileInputConfig

PODS_GLOB = "/var/log/pods/*/*/*.log"


class KubernetesInputConfig(FileInputConfig):
    type: Literal["kubernetes"] = Field(  # type: ignore[assignment]
        description="Tails the container logs of the pods on this node (/var/log/pods).", examples=["kubernetes"]
    )
    include: list[str] = Field(
        default=[PODS_GLOB],
        min_length=1,
        description="Where the kubelet keeps container logs: <namespace>_<pod>_<uid>/<container>/<restart>.log.",
        examples=[[PODS_GLOB], ["/var/log/pods/payments_*/*/*.log"]],
    )
    format: Literal["cri", "docker"] = Field(
        default="cri",
        description="`cri` (containerd, CRI-O); `docker` only for nodes still on dockershim (json-file logs).",
        examples=["cri"],
    )


class KubernetesInput(FileInput):
    type_name: ClassVar[str] = "kubernetes"
    description: ClassVar[str] = "Tails pod container logs under /var/log/pods with namespace, pod and container."
    Config: ClassVar[type[KubernetesInputConfig]] = KubernetesInputConfig

    def __init__(self, config: KubernetesInputConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.unrecognised_paths = 0
        """Files whose path is not the kubelet's layout (read without `k8s` fields)."""

    def counters(self) -> dict[str, float]:
        return {**super().counters(), "unrecognised_paths": self.unrecognised_paths}

    def source_fields(self, path: str) -> dict[str, Any]:
        fields = pod_fields(path)
        if fields is None:
            if not self.unrecognised_paths:
                self.log.warning(
                    "a matched file is not at <namespace>_<pod>_<uid>/<container>/<restart>.log; its records "
                    "have no k8s fields (further such files are counted, not logged)",
                    extra=kv(component=self.ctx.name, path=path),
                )
            self.unrecognised_paths += 1
            return {}
        return {"k8s": fields}
