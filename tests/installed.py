"""The product as users install it: a wheel built from this tree, installed in a fresh venv.

Every test that runs the `collector` CLI as a process runs this installation, not the editable
checkout, so a module missing from the wheel (or a file the code reads that is not packaged) fails
here first. The wheel is built once per test run from a copy of the sources the Containerfile
copies, so nothing left over from an earlier build (`build/`) can hide a missing module.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
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


@functools.cache
def installed() -> Installation:
    """Build and install once per test process; later calls return the same installation."""
    root = Path(tempfile.mkdtemp(prefix="collector-wheel-"))
    # Readable by every user: the container smoke test runs the installation as the service uid.
    root.chmod(0o755)
    wheel = build_wheel(root)
    venv = root / "venv"
    install_fresh(wheel, venv)
    return Installation(wheel=wheel, venv=venv)


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
    install_fresh(wheel, venv, interpreter)
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
