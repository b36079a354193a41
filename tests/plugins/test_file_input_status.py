"""`collector status files`: per file identity, checkpointed offset, size and unread bytes, from the data dir."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.installed import child_env, installed
from tests.plugins.file_input_support import NAME, Harness, append, numbered


def status(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [installed().collector, "status", "files", "-c", str(config), *extra],
        cwd=config.parent,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_status_files_while_the_collector_is_stopped(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    ok, rotated = h.logs / "ok.log", h.logs / "rot.log"
    append(ok, numbered("a", 0, 10))
    append(rotated, "r\n")
    await h.start()
    await h.wait_messages(11)
    await h.stop()
    append(ok, "unread line\n")
    os.rename(rotated, h.logs / "rot.log.1")
    append(h.logs / "new.log", "not read yet\n")
    config = tmp_path / "collector.yaml"
    config.write_text(
        f"data_dir: {h.data}\n"
        f"inputs:\n  {NAME}: {{type: file, include: ['{h.logs}/*.log']}}\n"
        f"outputs:\n  out: {{type: blackhole, inputs: [{NAME}]}}\n"
    )

    result = status(config, "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = {Path(r["path"]).name: r for r in json.loads(result.stdout)["files"]}
    st = ok.stat()
    assert rows["ok.log"]["state"] == "ok"
    assert rows["ok.log"]["identity"] == f"{st.st_dev}:{st.st_ino}"
    assert rows["ok.log"]["offset"] == len(numbered("a", 0, 10))
    assert (rows["ok.log"]["size"], rows["ok.log"]["unread"]) == (st.st_size, len("unread line\n"))
    assert rows["rot.log"]["state"] == "rotated" and rows["rot.log"]["now_at"].endswith("rot.log.1")
    assert rows["new.log"]["state"] == "new" and rows["new.log"]["unread"] == len("not read yet\n")

    text = status(config).stdout
    assert "UNREAD" in text.splitlines()[0] and str(ok) in text


def test_status_with_an_invalid_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("inputs:\n  x: {type: file}\n")
    result = status(config)
    assert result.returncode == 2 and "include" in result.stderr
