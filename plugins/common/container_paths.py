"""What the paths of container log files say about the container.

- kubelet: `/var/log/pods/<namespace>_<pod name>_<pod uid>/<container name>/<restart count>.log`
  (kubelet's `BuildPodLogsDirectory` / `BuildContainerLogsDirectory`; rotated copies get a
  date suffix). Namespace and pod names are DNS names and never hold `_`, so the directory
  name splits unambiguously.
- Docker json-file: `/var/lib/docker/containers/<64 hex id>/<id>-json.log` (rotated copies
  get `.1`, `.2`, ...).

Only the last components are looked at, so the same layout under another root (a
host directory mounted elsewhere, a test's temporary directory) is understood too.
"""

from __future__ import annotations

import re
from typing import Any

_CONTAINER_ID = re.compile(r"[0-9a-f]{64}")


def pod_fields(path: str) -> dict[str, Any] | None:
    """The `k8s` fields of `.../<namespace>_<pod>_<uid>/<container>/<restart>.log`; None for another layout."""
    parts = path.rsplit("/", 3)
    if len(parts) != 4:
        return None
    _, pod_dir, container, file_name = parts
    pod = pod_dir.split("_")
    restart = file_name.removesuffix(".log")
    if len(pod) != 3 or not all(pod) or not container or not file_name.endswith(".log"):
        return None
    if not restart.isascii() or not restart.isdigit():
        return None
    namespace, pod_name, pod_uid = pod
    return {
        "namespace": namespace,
        "pod_name": pod_name,
        "pod_uid": pod_uid,
        "container_name": container,
        "restart_count": int(restart),
    }


def docker_container_id(path: str) -> str | None:
    """The container id of `.../<id>/<id>-json.log`; None for another layout."""
    parts = path.rsplit("/", 2)
    if len(parts) != 3:
        return None
    _, directory, file_name = parts
    if _CONTAINER_ID.fullmatch(directory) and file_name == f"{directory}-json.log":
        return directory
    return None
