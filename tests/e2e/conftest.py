"""Drive the real `collector` CLI as a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.testing import free_port, wait_for_sync
from tests.installed import child_env as installed_child_env
from tests.installed import installed

THIRDPARTY = Path(__file__).parent / "thirdparty"
REPO = Path(__file__).resolve().parents[2]


def json_lines(path: Path, torn_at_most: int = 0) -> list[Any]:
    """The objects of a JSON-lines file a collector may be writing right now.

    The piece after the last newline is still being written and is left out; up to `torn_at_most` lines cut
    short by a kill -9 (each then ended by the next start, see the `file` output) are passed over.
    """
    if not path.exists():
        return []
    objects, torn = [], 0
    for line in path.read_bytes().split(b"\n")[:-1]:
        try:
            objects.append(json.loads(line))
        except ValueError:
            torn += 1
    assert torn <= torn_at_most, f"{torn} unreadable lines in {path} (at most {torn_at_most} expected)"
    return objects


def cli(
    *args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """The installed `collector` command (tests/installed.py), run outside the checkout."""
    return subprocess.run(
        [installed().collector, *args],
        capture_output=True,
        text=True,
        env=env or child_env(),
        input=input,
        timeout=timeout,
        check=False,
        cwd=cwd or Path(tempfile.gettempdir()),
    )


def child_env(**extra: str) -> dict[str, str]:
    # The third-party test plugin is found on PYTHONPATH; the checkout never is.
    return installed_child_env(THIRDPARTY, **extra)


class Collector:
    """A running `collector run` process with its API on a free port."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "collector.yaml"
        self.stderr_path = workdir / "stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def write_config(self, body: str) -> None:
        self.config.write_text(
            f"data_dir: {self.workdir / 'data'}\napi: {{listen: 127.0.0.1:{self.port}}}\nshutdown_grace: 10s\n{body}"
        )

    def start(self, wait_ready: bool = True, **env: str) -> None:
        """Start (again); stderr.log then holds this run's log only."""
        if hasattr(self, "_stderr"):
            self._stderr.close()
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [installed().collector, "run", "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=child_env(**env),
            cwd=self.workdir,
        )
        if wait_ready:
            wait_for_sync(self.ready, timeout=20)

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"collector exited with {self.proc.returncode}:\n{self.stderr()}")
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def status(self) -> dict:
        return json.loads(self.get("/status")[1])

    def component(self, name: str) -> dict:
        return next(c for c in self.status()["components"] if c["name"] == name)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` with these labels (0 while there is none)."""
        total = 0.0
        found = False
        for line in self.get("/metrics")[1].splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return total if found else 0.0

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        if hasattr(self, "_stderr"):
            self._stderr.close()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    c = Collector(tmp_path)
    yield c
    c.stop()
