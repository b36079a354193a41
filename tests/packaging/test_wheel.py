"""What ships is what is tested: the wheel, installed in a fresh venv, run away from the source tree.

The e2e tests run this same installation (tests/installed.py); these tests check the installation
itself: every module of the tree is in the wheel, the default config and a disk-buffered pipeline
run from it, and the container image's smoke step passes as the service uid.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from collector.testing import free_port, wait_for_sync
from tests.installed import REPO, Installation, child_env, installed, installed_for_other_users, tree_modules

CONTAINER = REPO / "packaging" / "container"
SERVICE_UID = 10001


@pytest.fixture(scope="module")
def installation() -> Installation:
    return installed()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory with no checkout in it or above it."""
    assert REPO not in tmp_path.parents
    return tmp_path


def test_the_wheel_holds_every_module_of_the_tree(installation: Installation) -> None:
    tree = tree_modules()
    assert "collector_plugins/inputs/generator/input.py" in tree and "collector/buffer/disk.py" in tree
    missing = sorted(tree - installation.wheel_modules())
    assert not missing, f"the wheel lacks {len(missing)} of {len(tree)} modules: {missing[:10]}"


def test_the_wheel_holds_every_plugin_page_and_test_case(installation: Installation) -> None:
    # Plugin READMEs and golden cases are package data: the docs point at the READMEs, and a plugin folder
    # in the wheel is the whole plugin (code, limits, README, testcases).
    import zipfile

    with zipfile.ZipFile(installation.wheel) as whl:
        names = set(whl.namelist())
    plugins = REPO / "plugins"
    pages = {f"collector_plugins/{p.relative_to(plugins).as_posix()}" for p in plugins.rglob("*.md")}
    cases = {
        f"collector_plugins/{p.relative_to(plugins).as_posix()}"
        for p in plugins.glob("*/*/testcases/**/*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert "collector_plugins/outputs/s3/README.md" in pages
    assert any("/testcases/" in c and c.endswith("config.yaml") for c in cases)
    assert pages and not pages - names, sorted(pages - names)[:10]
    assert not cases - names, f"the wheel lacks {len(cases - names)} testcases files: {sorted(cases - names)[:10]}"


def test_the_venv_imports_the_installed_copy_not_the_checkout(installation: Installation, outside: Path) -> None:
    code = "import collector, collector_plugins.outputs.file.output as f; print(collector.__file__); print(f.__file__)"
    done = subprocess.run(
        [installation.python, "-c", code], cwd=outside, env=child_env(), capture_output=True, text=True, check=True
    )
    for line in done.stdout.splitlines():
        assert Path(line).is_relative_to(installation.venv), line
    assert subprocess.run([installation.python, "-c", "import plugins"], cwd=outside, env=child_env()).returncode != 0


class Running:
    """`collector run` from the installation, in a directory of its own."""

    def __init__(self, installation: Installation, workdir: Path, config: str, **env: str) -> None:
        self.port = free_port()
        self.workdir = workdir
        (workdir / "collector.yaml").write_text(config)
        self.log = (workdir / "stderr.log").open("wb")
        self.proc = subprocess.Popen(
            [installation.collector, "run", "-c", "collector.yaml"],
            cwd=workdir,
            env=child_env(COLLECTOR_API_LISTEN=f"127.0.0.1:{self.port}", **env),
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"collector exited {self.proc.returncode}:\n{self.stderr()}")
        return True

    def stderr(self) -> str:
        return (self.workdir / "stderr.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=40)
        self.log.close()
        return code


@pytest.fixture
def running(installation: Installation, outside: Path) -> Iterator[list[Running]]:
    started: list[Running] = []
    yield started
    for r in started:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait()
        r.log.close()


def test_the_default_config_runs_from_the_wheel(
    installation: Installation, outside: Path, running: list[Running]
) -> None:
    config = (REPO / "collector.yaml").read_text()
    r = Running(installation, outside, config)
    running.append(r)
    out = outside / "data" / "out" / "metrics.jsonl"
    # internal_metrics emits every 10 s; the first lines may take that long.
    wait_for_sync(lambda: r.alive() and out.exists() and out.stat().st_size > 0, timeout=30)
    assert r.stop(signal.SIGINT) == 0, r.stderr()
    records = [json.loads(line) for line in out.read_text().splitlines()]  # read once it is no longer written
    # Host or self metrics, each through the config's add_fields processor.
    assert records and all(r["name"] and "collector_host" in r["tags"] for r in records)
    assert "Traceback" not in r.stderr()


def test_a_disk_buffered_pipeline_runs_from_the_wheel(
    installation: Installation, outside: Path, running: list[Running]
) -> None:
    count = 20_000
    config = f"""
data_dir: ./data
api: {{listen: "${{COLLECTOR_API_LISTEN}}"}}
shutdown_grace: 10s
inputs:
  gen: {{type: generator, format: json, rate: 0, count: {count}, batch_size: 500}}
processors:
  parsed: {{type: parse_json, inputs: [gen]}}
outputs:
  out:
    type: file
    inputs: [parsed]
    path: out/events.jsonl
    buffer: {{type: disk, max_bytes: 64MiB}}
"""
    r = Running(installation, outside, config)
    running.append(r)
    out = outside / "data" / "out" / "events.jsonl"

    # A finite generator: the collector drains every buffer and exits by itself.
    assert r.proc.wait(timeout=60) == 0, r.stderr()
    assert "drained=True" in r.stderr()
    assert out.read_bytes().count(b"\n") == count
    # The disk buffer really was used: its segments live under data_dir.
    assert any(p.is_file() for p in (outside / "data").rglob("*") if "buffer" in p.as_posix())


@pytest.fixture(scope="module")
def service_installation() -> Installation:
    """The wheel in a venv the service uid can execute (the image's venv is /opt/collector)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("switching to the service uid needs root and util-linux setpriv")
    found = installed_for_other_users()
    if found is None:
        pytest.skip("no Python >= 3.11 that an unprivileged uid may execute")
    return found


@pytest.fixture
def service_state() -> Iterator[Path]:
    """A directory the service uid owns, outside pytest's private tmp (in the image: the VOLUME)."""
    state = Path(tempfile.mkdtemp(prefix="collector-smoke-"))
    os.chown(state, SERVICE_UID, SERVICE_UID)
    yield state
    shutil.rmtree(state, ignore_errors=True)


def run_smoke_step(
    installation: Installation, config: str, state: Path, seconds: int
) -> subprocess.CompletedProcess[str]:
    """packaging/container/smoke.sh on `config`, as the service uid, with the installation on PATH."""
    config_path = state / "collector.yaml"
    config_path.write_text(config)
    config_path.chmod(0o644)
    # A copy the service uid can read: the checkout may sit under a directory only root can enter (mktemp -d).
    smoke = state / "smoke.sh"
    shutil.copyfile(CONTAINER / "smoke.sh", smoke)
    smoke.chmod(0o644)
    setpriv = str(shutil.which("setpriv"))
    as_service = [setpriv, f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}", "--clear-groups"]
    env = child_env(
        PATH=f"{installation.bin}{os.pathsep}{os.environ['PATH']}",
        COLLECTOR_API_LISTEN=f"127.0.0.1:{free_port()}",
        SMOKE_SECONDS=str(seconds),
    )
    return subprocess.run(
        [*as_service, "sh", str(smoke), str(config_path)],
        cwd=state,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_the_container_smoke_step_runs_the_image_config_as_the_service_uid(
    service_installation: Installation, service_state: Path
) -> None:
    # The image's config, with only data_dir moved to a directory the service uid owns (in the image
    # it is the VOLUME /var/lib/collector, owned by 10001).
    config = yaml.safe_load((CONTAINER / "collector.yaml").read_text())
    config["data_dir"] = str(service_state / "data")
    done = run_smoke_step(service_installation, yaml.safe_dump(config), service_state, seconds=3)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "smoke: ready" in done.stdout and "smoke: stopped cleanly" in done.stdout
    # It ran as the service uid: the state it wrote belongs to 10001.
    assert (service_state / "data").stat().st_uid == SERVICE_UID


def test_the_container_smoke_step_fails_when_the_collector_cannot_start(
    service_installation: Installation, service_state: Path
) -> None:
    broken = f"data_dir: {service_state / 'data'}\noutputs:\n  x: {{type: nonsense}}\n"
    done = run_smoke_step(service_installation, broken, service_state, seconds=1)
    assert done.returncode != 0
    assert "before it was ready" in done.stderr
