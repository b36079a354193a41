"""The operator's day with the installed CLI: pipes closed early, and which config a command reads."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from collector.testing import free_port, wait_for_sync
from tests.e2e.conftest import REPO, child_env, cli
from tests.installed import installed

# Every kind of command that prints: a core command, a core command reading a config, plugin commands.
CONFIG = """\
data_dir: {data}
inputs:
  app:
    type: file
    include: [{data}/app.log]
  xray:  # never started: these commands only read the config
    type: xray
    listen: "udp:127.0.0.1:2000 tcp:127.0.0.1:2000"
    sampling_proxy: false
outputs:
  recent:
    type: trace_index
    inputs: [xray]
  screen:
    type: stdout
    inputs: [app]
"""
TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"
PRINTING = [
    ["schema"],
    ["plugins"],
    ["plugins", "--format", "json"],
    ["trace", TRACE_ID],
    ["status", "files"],
    ["dlq", "list"],
    ["version"],
]
# argparse prints help ignoring a write error itself, so there the status stays 0; quiet all the same.
HELP = [["--help"], ["status", "--help"]]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "collector.yaml"
    path.write_text(CONFIG.format(data=tmp_path / "data"))
    return path


def _with_config(command: list[str], config: Path) -> list[str]:
    return [*command, "-c", str(config)] if command[0] in ("trace", "status", "dlq") else command


@pytest.mark.parametrize("command", PRINTING + HELP, ids=" ".join)
def test_a_reader_gone_before_the_first_line_is_quiet(command: list[str], config: Path) -> None:
    # The read end is closed before the command starts: its first write meets EPIPE, every time.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [installed().collector, *_with_config(command, config)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == (0 if command in HELP else 141)  # 128 + SIGPIPE, as `cat` gives


def test_schema_piped_to_a_reader_of_one_line(config: Path) -> None:
    # `collector schema | head -1`: the reader takes a line and goes; the schema is far larger than a pipe's buffer.
    with subprocess.Popen(
        [installed().collector, "schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env()
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"{\n"
        proc.stdout.close()
        assert proc.wait(timeout=60) == 141
        assert proc.stderr.read() == b""


def test_a_real_shell_pipe_into_head(config: Path) -> None:
    shell = f"set -o pipefail; {installed().collector} schema | head -n 2; echo status=$?"
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, env=child_env(), timeout=60)
    assert out.stderr == ""
    assert out.stdout.splitlines()[-1] == "status=141"


# Which config: -c, then $COLLECTOR_CONFIG, then ./collector.yaml, then /etc/collector/collector.yaml.
def _valid(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONFIG.format(data=tmp_path / "data"))
    return path


def test_dash_c_wins_over_the_environment_and_the_directory(tmp_path: Path) -> None:
    chosen = _valid(tmp_path, "chosen.yaml")
    env_file = _valid(tmp_path, "from-env.yaml")
    _valid(tmp_path, "collector.yaml")
    out = cli("validate", "-c", str(chosen), env=child_env(COLLECTOR_CONFIG=str(env_file)), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{chosen}: valid")


def test_the_environment_wins_over_the_directory(tmp_path: Path) -> None:
    env_file = _valid(tmp_path, "from-env.yaml")
    _valid(tmp_path, "collector.yaml")
    out = cli("validate", env=child_env(COLLECTOR_CONFIG=str(env_file)), cwd=tmp_path)
    assert out.stdout.startswith(f"{env_file}: valid"), out.stderr


def test_a_collector_yaml_in_the_working_directory_is_found(tmp_path: Path) -> None:
    _valid(tmp_path, "collector.yaml")
    for command in (["validate"], ["trace", TRACE_ID], ["status", "files"], ["dlq", "list"]):
        out = cli(*command, cwd=tmp_path)
        assert "/etc/collector" not in out.stderr, (command, out.stderr)
        assert out.returncode in (0, 1), (command, out.stderr)  # trace: 1 = not found, after reading the config
    assert cli("validate", cwd=tmp_path).stdout.startswith("collector.yaml: valid")


def test_without_any_the_system_config_is_read(tmp_path: Path) -> None:
    if Path("/etc/collector/collector.yaml").exists():
        pytest.skip("this machine has a system config")
    for command in (["validate"], ["trace", TRACE_ID], ["status", "files"], ["dlq", "list"], ["run"]):
        out = cli(*command, cwd=tmp_path)
        assert out.returncode == 2, (command, out.stderr)
        assert "/etc/collector/collector.yaml" in out.stderr, (command, out.stderr)


# `make run` stopped with Ctrl-C: the terminal's SIGINT reaches make and the collector alike (one process group).
def test_make_run_stopped_with_ctrl_c(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("no make on this machine")
    port = free_port()
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\napi: {{listen: 127.0.0.1:{port}}}\n"
        "inputs:\n  demo: {type: generator, rate: 100}\noutputs:\n  sink: {type: blackhole, inputs: [demo]}\n"
    )
    venv = installed().venv  # the installed wheel; -o: make must not (re)install into it
    log = (tmp_path / "make.log").open("wb")
    make = subprocess.Popen(
        ["make", "-C", str(REPO), "-o", f"{venv}/.installed", "run", f"VENV={venv}", f"CONFIG={config}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env(),
        preexec_fn=_as_a_terminal_job,
    )
    try:
        wait_for_sync(lambda: _ready(port), timeout=30)
        os.killpg(make.pid, signal.SIGINT)
        status = make.wait(timeout=30)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        log.close()
    text = (tmp_path / "make.log").read_text()
    # The collector drained and exited 0; make itself always dies of an interrupt (GNU make re-raises
    # SIGINT after its recipe ends, whatever the recipe's status), which a shell shows as 130: README says so.
    assert 'msg="collector stopped" drained=True' in text, text
    assert status == -signal.SIGINT, text


def _as_a_terminal_job() -> None:
    # Its own process group, as a shell's foreground job has, and SIGINT at its default: a test runner
    # started in the background inherits it ignored, and make keeps an ignored SIGINT ignored.
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False
