"""Prometheus peers shared by the plugin tests: a prometheus_client app and Debian's prometheus-node-exporter."""

from __future__ import annotations

import shutil
import signal
import subprocess
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from collector.testing import free_port, wait_for_sync


@pytest.fixture
def app() -> Iterator[tuple[CollectorRegistry, int]]:
    registry = CollectorRegistry()
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield registry, port
    server.shutdown()
    server.server_close()
    thread.join(5)


NODE_EXPORTER = shutil.which("prometheus-node-exporter")


@pytest.fixture
def node_exporter() -> Iterator[int]:
    if NODE_EXPORTER is None:
        pytest.skip("prometheus-node-exporter is not installed (apt-get install -y prometheus-node-exporter)")
    port = free_port()
    process = subprocess.Popen(
        [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError("prometheus-node-exporter exited at start")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1):
                    return True
            except OSError:
                return False

        try:
            wait_for_sync(answers, timeout=10, interval=0.1)
        except TimeoutError:
            raise RuntimeError("prometheus-node-exporter did not start") from None
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
