"""A disk buffer on a real, small filesystem that fills up (issue 13).

The data directory is a 32 MiB tmpfs; the output's disk buffer may take
256 MiB. A file input feeds the `gate` output (tests/e2e/thirdparty) through
`parse_json`:

1. the destination is down: the buffer fills the filesystem and writes fail
   (ENOSPC). The input is held back, /readyz is 503 with the reason, /metrics
   counts the refused writes, /status and `collector top` show the condition,
   /healthz stays 200 (the output still has data to deliver: not wedged);
2. the destination comes back: everything arrives, once, and the buffer takes
   data again (it had to free delivered segments to get there);
3. something else fills the filesystem (a ballast file) while the buffer has
   nothing left to deliver: /readyz 503, and after `wedged_after` /healthz 503
   too; the ballast is deleted and the new lines arrive (the time from freeing
   the space to delivery is printed).

Needs root (mount); skipped with the reason otherwise.
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.testing import wait_for_sync
from tests.e2e.conftest import Collector, cli, json_lines
from tests.small_filesystem import mounted_tmpfs

LINE_PAD = "x" * 900  # ~1 KB lines: the 32 MiB filesystem fills after ~30k of them


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "data", "32m") as mount_point:
        yield mount_point


def write_lines(path: Path, first: int, count: int, pad: str = LINE_PAD) -> None:
    with path.open("a") as f:
        f.writelines(json.dumps({"n": n, "pad": pad}) + "\n" for n in range(first, first + count))


def delivered(path: Path) -> list[int]:
    return [r["n"] for r in json_lines(path)]  # the line being written, if any, is not counted yet


def fill(path: Path) -> None:
    """Append to `path` until the filesystem is full."""
    with path.open("ab", buffering=0) as f:
        for chunk in (1 << 20, 4096, 1):
            block = b"\0" * chunk
            while True:
                try:
                    f.write(block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break


def config(c: Collector, log: Path) -> str:
    return f"""\
data_dir: {c.workdir / "data"}
api:
  listen: 127.0.0.1:{c.port}
  health: {{wedged_after: 2s, full_after: 1s}}
shutdown_grace: 10s
inputs:
  app: {{type: file, include: ["{log}"], read_from: beginning, max_line_bytes: 1MiB}}
processors:
  parsed: {{type: parse_json, inputs: [app], drop_field: true}}
outputs:
  dest:
    type: gate
    inputs: [parsed]
    path: {c.workdir / "delivered.jsonl"}
    closed_while: {c.workdir / "outage"}
    buffer: {{type: disk, max_bytes: 256MiB, when_full: block}}
    retry: {{initial_backoff: 50ms, max_backoff: 200ms}}
"""


def test_a_full_disk_holds_the_input_back_then_everything_arrives(collector: Collector, small_disk: Path) -> None:
    c = collector
    log = c.workdir / "app.log"
    out = c.workdir / "delivered.jsonl"
    first = 120_000  # ~120 MB: more than the filesystem and the channels in front of the buffer (2 x 16k) hold
    write_lines(log, 0, first)
    (c.workdir / "outage").touch()
    c.config.write_text(config(c, log))
    c.start()

    # 1. The buffer fills the filesystem; writes fail; the input is held back.
    def write_errors() -> float:
        return c.metric("collector_buffer_disk_errors_total", component="dest", operation="write")

    wait_for_sync(lambda: write_errors() > 0, timeout=60)
    status, body = c.get("/readyz")
    assert status == 503 and "dest: cannot accept data: disk buffer cannot write (ENOSPC" in body, body
    buffer = c.component("dest")["buffer"]
    assert buffer["accepting"] is False and buffer["condition"] == "write_failing"
    assert c.metric("collector_buffer_accepting", component="dest", condition="write_failing") == 0
    assert "disk buffer cannot write; inputs are held back" in c.stderr()
    wait_for_sync(lambda: c.component("dest")["buffer"]["blocked_seconds"] > 2.5, timeout=10)
    assert c.get("/healthz")[0] == 200  # waiting for the destination, not wedged: delivering frees room
    held = c.component("app")["sent_events"]
    assert held < first
    top = cli("top", "--api", f"http://127.0.0.1:{c.port}", "--once", "--interval", "0.2")
    assert "dest: buffer disk refuses writes (ENOSPC" in top.stdout, top.stdout + top.stderr
    print(f"phase 1: input held at {held} of {first} lines; {write_errors():.0f} refused writes")

    # 2. The destination comes back: the buffer frees what is delivered and takes the rest.
    back = time.monotonic()
    (c.workdir / "outage").unlink()
    wait_for_sync(lambda: len(delivered(out)) >= first, timeout=120, interval=0.2)
    drained = time.monotonic() - back
    got = delivered(out)
    assert sorted(got) == list(range(first)), "lines lost or duplicated"
    wait_for_sync(lambda: c.get("/readyz")[0] == 200, timeout=10)
    assert c.component("dest")["buffer"]["accepting"] is True
    assert "disk buffer writes again" in c.stderr()
    print(f"phase 2: {first} lines delivered {drained:.2f}s after the destination came back")

    # 3. Something else fills the disk while the buffer has nothing left to deliver: wedged.
    ballast = small_disk / "ballast"
    total = first
    deadline = time.monotonic() + 30

    def refusing() -> bool:
        return c.component("dest")["buffer"]["condition"] == "write_failing"

    # A refused write seals the segment being written; once delivered it is deleted and its room used
    # again (the recovery under test). So fill the disk and add lines, each twice as long as the one
    # before, until what the buffer can free no longer fits the next line: then it holds nothing it
    # could delete, and only freeing the disk helps.
    def wedged() -> bool:
        """Refusing with nothing pending, and still so after the buffer had its chance to reclaim room (it
        deletes delivered segments at its fsync cadence, 1 s, and the refused write is retried meanwhile)."""
        if not (refusing() and c.component("dest")["buffer"]["events"] == 0):
            return False
        time.sleep(2.5)  # not a wait for a condition: the condition must hold for this long
        return refusing() and c.component("dest")["buffer"]["events"] == 0

    size = 16 * 1024
    while not wedged():
        assert time.monotonic() < deadline and size <= 512 * 1024, "the buffer never hit the full disk"
        fill(ballast)
        write_lines(log, total, 1, pad="y" * size)
        total += 1
        size *= 2
        wait_for_sync(lambda n=total: refusing() or len(delivered(out)) == n, timeout=10)
    wait_for_sync(lambda: c.get("/readyz")[0] == 503, timeout=10)
    try:
        wait_for_sync(lambda: c.get("/healthz")[0] == 503, timeout=30)
    except TimeoutError:
        raise AssertionError(f"never wedged: /healthz {c.get('/healthz')}, dest {c.component('dest')}") from None
    status, body = c.get("/healthz")
    assert "dest: buffer wedged" in body and "nothing left to deliver" in body, body
    assert c.metric("collector_probe_ok", probe="healthz") == 0

    freed = time.monotonic()
    ballast.unlink()
    wait_for_sync(lambda: len(delivered(out)) >= total, timeout=30, interval=0.05)
    to_delivery = time.monotonic() - freed
    assert sorted(delivered(out)) == list(range(total))
    wait_for_sync(lambda: c.get("/healthz")[0] == 200 and c.get("/readyz")[0] == 200, timeout=10)
    print(f"phase 3: space freed -> all {total - first} new lines delivered in {to_delivery:.2f}s")
    checkpoint_failures = c.metric("collector_component_checkpoint_failures_total", component="app")
    print(f"file input checkpoint writes refused by the full disk: {checkpoint_failures:.0f}")
    assert to_delivery < 10
