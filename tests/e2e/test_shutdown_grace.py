"""`shutdown_grace` is the upper bound of a SIGTERM stop (issue 13: 35.8 s with a 30 s grace).

Each output here can never deliver: a TCP peer that accepts connections and never reads (the
socket output's write blocks once the kernel buffers are full), or an HTTP endpoint that accepts
and never answers (an AWS call waits for its read timeout). With `shutdown_grace: 3s` the process
must exit within 3 s plus the stated slack, with status 0, what was not delivered counted
(memory buffer) or kept on disk (disk buffer) for the next run.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator

import pytest

from collector.defaults import SHUTDOWN_SLACK_SECONDS
from collector.testing import wait_for_sync
from tests.e2e.conftest import Collector

pytestmark = pytest.mark.slow

GRACE = 3.0


@pytest.fixture
def silent_peer() -> Iterator[int]:
    """A listening TCP port whose connections are accepted (by the kernel) and never read or answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server.getsockname()[1]


def write_config(collector: Collector, outputs: str) -> None:
    collector.config.write_text(
        f"""\
data_dir: {collector.workdir / "data"}
api: {{listen: 127.0.0.1:{collector.port}}}
shutdown_grace: {GRACE:g}s
inputs:
  gen: {{type: generator, rate: 20000, batch_size: 500}}
outputs:
{outputs}"""
    )


def stop_and_time(collector: Collector) -> tuple[int, float]:
    started = time.monotonic()
    collector.signal(signal.SIGTERM)
    code = collector.wait(timeout=GRACE + SHUTDOWN_SLACK_SECONDS + 20)
    return code, time.monotonic() - started


def test_sigterm_with_a_peer_that_never_reads_exits_within_the_grace(collector: Collector, silent_peer: int) -> None:
    write_config(
        collector,
        f"""\
  stuck:
    type: socket
    inputs: [gen]
    address: tcp://127.0.0.1:{silent_peer}
    write_timeout: 60s
    buffer: {{type: memory, max_events: 100000}}
""",
    )
    collector.start()
    # The peer's buffers are full and a write is blocked: sending stopped while intake goes on.
    wait_for_sync(lambda: collector.component("stuck")["queue_events"] + _buffered(collector, "stuck") > 20000)
    code, took = stop_and_time(collector)
    assert code == 0, collector.stderr()
    assert took < GRACE + SHUTDOWN_SLACK_SECONDS, f"stop took {took:.1f}s"
    log = collector.stderr()
    assert "stuck.shutdown_timeout=" in log  # what the memory buffer still held is counted, not lost silently
    assert "Traceback" not in log


def test_sigterm_with_an_aws_endpoint_that_hangs_exits_within_the_grace_and_keeps_the_data(
    collector: Collector, silent_peer: int
) -> None:
    write_config(
        collector,
        f"""\
  archive:
    type: s3
    inputs: [gen]
    bucket: never-answers
    region: eu-west-1
    endpoint_url: http://127.0.0.1:{silent_peer}
    read_timeout: 60s
    batch: {{timeout: 100ms}}
    buffer: {{type: disk, max_bytes: 256MiB}}
""",
    )
    collector.start()
    wait_for_sync(lambda: _buffered(collector, "archive") > 20000)
    code, took = stop_and_time(collector)
    assert code == 0, collector.stderr()
    assert took < GRACE + SHUTDOWN_SLACK_SECONDS, f"stop took {took:.1f}s"
    assert "Traceback" not in collector.stderr()
    segments = list((collector.workdir / "data" / "buffers" / "archive").rglob("*"))
    assert sum(p.stat().st_size for p in segments if p.is_file()) > 0  # what was not sent waits on disk


def _buffered(collector: Collector, name: str) -> int:
    buffer = collector.component(name).get("buffer") or {}
    return int(buffer.get("events", 0))
