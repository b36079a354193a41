"""The product as users install it: a wheel built from this tree, installed in a fresh venv.

Every test that runs the `collector` CLI as a process runs this installation, not the editable
checkout, so a module missing from the wheel (or a file the code reads that is not packaged) fails
here first. The wheel is built once per test run from a copy of the sources the Containerfile
copies, so nothing left over from an earlier build (`build/`) can hide a missing module.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What a wheel is built from: the same list as packaging/container/Containerfile's COPY lines.
WHEEL_SOURCES = ("pyproject.toml", "setup.py", "README.md", "collector", "plugins")
# The extras the end-to-end tests exercise (zstd compression, Parquet), on top of the default install.
EXTRAS = "zstd,parquet"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")


@dataclass(frozen=True)
class Installation:
    wheel: Path
    venv: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"

    @property
    def collector(self) -> str:
        return str(self.bin / "collector")

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    def wheel_modules(self) -> set[str]:
        """Import paths of the .py files in the wheel, as `collector_plugins/inputs/file/input.py`."""
        with zipfile.ZipFile(self.wheel) as whl:
            return {name for name in whl.namelist() if name.endswith(".py")}


def _run(command: list[str], **kwargs: object) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def build_wheel(into: Path) -> Path:
    src = into / "src"
    src.mkdir()
    for name in WHEEL_SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=_IGNORED)
        else:
            shutil.copy2(path, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(into), str(src)])
    shutil.rmtree(src)
    (wheel,) = into.glob("node_collector-*.whl")
    return wheel


def install_fresh(wheel: Path, venv: Path, interpreter: str = sys.executable) -> None:
    _run([interpreter, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, f"{wheel}[{EXTRAS}]"])


def _run_id() -> str | None:
    """The pytest-xdist run's id when this process is one of its workers (each worker is a process)."""
    return os.environ.get("PYTEST_XDIST_TESTRUNUID")


@functools.cache
def _root() -> Path:
    """The directory of this test run's installations: one per run, shared by its xdist workers."""
    run_id = _run_id()
    if run_id:
        root = Path(tempfile.gettempdir()) / f"collector-wheel-{run_id}"
        root.mkdir(exist_ok=True)
    else:
        root = Path(tempfile.mkdtemp(prefix="collector-wheel-"))
    root.chmod(0o755)  # readable by every user: the container smoke test runs it as the service uid
    return root


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """Held while one worker builds or installs, so the run does it once, not once per worker."""
    run_id = _run_id()
    if not run_id:
        yield
        return
    # One lock file per user, kept: a file per run would pile up in /tmp, and removing it could let two later
    # workers lock different files. Runs side by side only wait for each other's builds.
    with (Path(tempfile.gettempdir()) / f"collector-wheel-{os.getuid()}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@functools.cache
def installed() -> Installation:
    """Build and install once per test run; later calls (and other workers) get the same installation.

    Each process that uses it signs in (a file under `users/`); `release()` signs out, and the last one
    out removes it, so a worker that finishes early never removes what another worker is still running.
    """
    root = _root()
    venv = root / "venv"
    done = root / "installed"  # written last: holds the wheel's name once the venv is complete
    with _exclusive():
        if not done.exists():
            wheel = build_wheel(root)
            install_fresh(wheel, venv)
            done.write_text(wheel.name)
        users = root / "users"
        users.mkdir(exist_ok=True)
        (users / _user()).touch()
    return Installation(wheel=root / done.read_text(), venv=venv)


def release() -> None:
    """Sign this process out of the run's installation; the last user out removes it (if it was used)."""
    if not installed.cache_info().currsize:
        return
    root = _root()
    with _exclusive():
        (root / "users" / _user()).unlink(missing_ok=True)
        if not any((root / "users").iterdir()):
            shutil.rmtree(root, ignore_errors=True)


def _user() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _usable_by_everyone(path: Path) -> bool:
    """Whether any user may execute `path` (every directory above it searchable by others)."""
    real = path.resolve()
    return all(parent.stat().st_mode & 0o001 for parent in real.parents) and bool(real.stat().st_mode & 0o001)


def interpreter_for_other_users() -> str | None:
    """A Python >= 3.11 that an unprivileged uid can run: this one, or the system's (this one may
    live under a private home directory, as pyenv's does under /root)."""
    candidates = [Path(sys.executable), *(Path(f"/usr/bin/python3.{minor}") for minor in range(15, 10, -1))]
    for candidate in candidates:
        if candidate.exists() and _usable_by_everyone(candidate):
            return str(candidate)
    return None


@functools.cache
def installed_for_other_users() -> Installation | None:
    """The same wheel in a venv that another uid can run (None if no such interpreter exists)."""
    interpreter = interpreter_for_other_users()
    if interpreter is None:
        return None
    wheel = installed().wheel
    if interpreter == sys.executable:
        return installed()
    venv = wheel.parent / "venv-shared"
    done = wheel.parent / "installed-shared"
    with _exclusive():
        if not done.exists():
            install_fresh(wheel, venv, interpreter)
            done.touch()
    return Installation(wheel=wheel, venv=venv)


def tree_modules() -> set[str]:
    """Every .py file of the source tree under the import path it must have in the wheel."""
    found = set()
    for top, package in (("collector", "collector"), ("plugins", "collector_plugins")):
        for path in (REPO / top).rglob("*.py"):
            if "__pycache__" not in path.parts:
                found.add(f"{package}/{path.relative_to(REPO / top).as_posix()}")
    return found


def child_env(*pythonpath: Path, **extra: str) -> dict[str, str]:
    """The test's environment for a CLI process: no checkout on PYTHONPATH, no notify socket."""
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    env.update(extra)
    return env
