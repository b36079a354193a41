"""`collector top`, the installed command, against a server that serves /status snapshots over time.

The server follows the collector's API: GET /status answers the JSON snapshot; once
its snapshots are used up it answers 503, and top exits 1 ("cannot reach").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e.conftest import cli

LONG = "nginx_access_logs_from_every_pod_of_the_frontend_deployment"


def snapshot(t: int) -> dict:
    """At time t: an input that emits 100 events every 10 s (as the default config's), and its output."""
    n = 100 * (t // 10)
    return {
        "version": "0.1.0",
        "time": float(t),
        "uptime_seconds": float(t),
        "ready": True,
        "healthy": True,
        "components": [
            {"name": LONG, "section": "inputs", "type": "file", "state": "running", "received_events": n},
            {"name": "local", "section": "outputs", "type": "file", "state": "running", "sent_events": n},
        ],
    }


@pytest.fixture
def api() -> Iterator[str]:
    snapshots = iter([snapshot(t) for t in range(40)])  # one a second of collector time, t = 0..39

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(next(snapshots, None)).encode()
            if self.path != "/status" or body == b"null":
                self.send_error(503)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_top_shows_bursty_flows_over_its_window_with_full_names(api: str) -> None:
    result = cli("top", "--api", api, "--interval", "0.01", "--window", "30", timeout=60)
    assert result.returncode == 1 and "cannot reach the collector" in result.stderr, result.stderr
    last = result.stdout.split("\x1b[H\x1b[2J")[-1]
    assert "rates over the last 30s, totals since start" in last
    rows = {line.split()[0]: line.split() for line in last.splitlines() if line.startswith((LONG, "local "))}
    # 300 events between t=9 and t=39: 10/s, though nothing came in the last 9 s. Totals: 300.
    assert rows[LONG][:4] == [LONG, "file", "running", "10/s"] and rows[LONG][6] == "300"
    assert rows["local"][4] == "10/s" and rows["local"][7] == "300"
    # Columns line up under their headers, whatever the longest name.
    header = next(line for line in last.splitlines() if line.startswith("COMPONENT"))
    assert header.index("TYPE") == len(LONG) + 2


def test_a_short_window_shows_the_gaps(api: str) -> None:
    result = cli("top", "--api", api, "--interval", "0.01", "--window", "1", timeout=60)
    last = result.stdout.split("\x1b[H\x1b[2J")[-1]
    row = next(line.split() for line in last.splitlines() if line.startswith(LONG))
    assert "rates over the last 1s" in last and row[3] == "0/s" and row[6] == "300"
