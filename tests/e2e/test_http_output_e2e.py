"""The installed CLI: file input -> http output (NDJSON, gzip, disk buffer) -> a loopback HTTP server that is
down for a while (connection refused), then answers 503 with Retry-After, then takes everything; the collector
is killed with SIGKILL at random moments throughout and restarted. Every line must arrive at least once (the
http output has no idempotency key: replays after a kill may repeat lines, and the test reports how many)."""

from __future__ import annotations

import gzip
import json
import random
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from collector.testing import free_port, wait_for_sync
from tests.e2e.conftest import Collector


class Endpoint:
    """Records the lines of every accepted NDJSON body; answers 503 + Retry-After while `refusing` is set."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.refusing = threading.Event()
        self.lines: list[str] = []
        self.refused = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if endpoint.refusing.is_set():
                    with endpoint._lock:
                        endpoint.refused += 1
                    self.send_response(503)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    return
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                lines = [json.loads(line)["message"] for line in body.splitlines() if line]
                with endpoint._lock:
                    endpoint.lines.extend(lines)
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()

    def distinct(self) -> int:
        with self._lock:
            return len(set(self.lines))


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    ep = Endpoint(free_port())
    yield ep
    ep.stop()


def config(logs: str, port: int) -> str:
    return f"""\
inputs:
  app: {{type: file, include: ["{logs}/*.log"]}}
outputs:
  ingest:
    type: http
    inputs: [app]
    url: http://127.0.0.1:{port}/ingest
    format: ndjson
    compression: gzip
    batch: {{max_events: 200, timeout: 50ms}}
    buffer: {{type: disk, max_bytes: 64MiB, fsync: interval, fsync_interval: 200ms}}
    retry: {{initial_backoff: 50ms, max_backoff: 300ms}}
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_outage_then_503s_then_recovery_with_sigkills_loses_no_line(collector: Collector, endpoint: Endpoint) -> None:
    total = 6_000
    logs = collector.workdir / "logs"
    logs.mkdir()
    collector.write_config(config(str(logs), endpoint.port))
    seed = random.randrange(2**32)
    rnd = random.Random(seed)
    expected = {f"line {i:05d}" for i in range(total)}

    # 1. Outage: nothing listens; lines are written while the collector runs and is killed.
    with (logs / "app.log").open("w") as out:
        for part in range(3):
            collector.start()
            out.write("".join(f"line {i:05d}\n" for i in range(part * 1000, (part + 1) * 1000)))
            out.flush()
            time.sleep(rnd.uniform(0.1, 0.4))  # not a wait: a random moment to kill at
            collector.signal(signal.SIGKILL)
            collector.wait()
        # 2. The endpoint is up but answers 503 + Retry-After; killed again mid-retry.
        endpoint.refusing.set()
        endpoint.start()
        collector.start()
        out.write("".join(f"line {i:05d}\n" for i in range(3000, total)))
        out.flush()
        wait_for_sync(lambda: endpoint.refused > 0, timeout=30)
        collector.signal(signal.SIGKILL)
        collector.wait()
    # 3. Recovery, with kills at random moments while it delivers.
    endpoint.refusing.clear()
    kills = 0
    while kills < 3 and endpoint.distinct() < total:
        collector.start()
        time.sleep(rnd.uniform(0.05, 0.3))
        collector.signal(signal.SIGKILL)
        collector.wait()
        kills += 1
    collector.start()
    wait_for_sync(lambda: endpoint.distinct() >= total, timeout=60, interval=0.2)
    collector.signal(signal.SIGTERM)
    assert collector.wait(timeout=30) == 0, collector.stderr()
    print(f"seed={seed} kills={kills + 4} received={len(endpoint.lines)} duplicates={len(endpoint.lines) - total}")
    assert set(endpoint.lines) == expected, f"seed={seed}"
