"""Real forward clients against the `forward` input running in the real runtime.

- the Python `fluent-logger` (Message mode only, no acks), over TCP and a unix socket;
- the npm `@fluent-org/logger` in Message, Forward, PackedForward and CompressedPackedForward modes with
  `chunk` acknowledgements, with the shared-key handshake (and users), and over TLS.

The npm client lives in tests/peers/node (package.json and package-lock.json committed); `npm ci` runs once per
session when its node_modules is missing.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from collector.api import HostFacts
from collector.config import parse_config
from collector.registry import load_registry
from collector.runtime import Runtime
from collector.testing import Capture, free_port, wait_for
from tests.plugins.receiver_support import self_signed_cert

NODE_PEER = Path(__file__).resolve().parents[1] / "peers" / "node"


@pytest.fixture(scope="session")
def node_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are needed for the @fluent-org/logger client")
    if not (NODE_PEER / "node_modules" / "@fluent-org" / "logger").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_PEER, check=True, timeout=300
        )
    return NODE_PEER / "send.js"


class Collector:
    """A runtime with `forward -> capture` on a free port."""

    def __init__(self, runtime: Runtime, port: int, capture: Capture) -> None:
        self.runtime = runtime
        self.port = port
        self.capture = capture

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.capture("got")

    def counters(self) -> dict[str, float]:
        return self.runtime.stats["fwd"].extra()


async def start_collector(tmp_path: Path, forward: str = "", output: str = "") -> Collector:
    capture = Capture()
    registry = load_registry()
    registry.add(capture.output)
    port = free_port()
    config = parse_config(
        f"""
inputs:
  fwd: {{type: forward, listen: "tcp://127.0.0.1:{port}", self_hostname: collector-test{forward}}}
outputs:
  got: {{type: capture, inputs: [fwd]{output}}}
""",
        "c.yaml",
        registry,
        environ={},
    )
    runtime = Runtime(tmp_path / "data", HostFacts("h"))
    await runtime.apply(config.graph)
    await wait_for(lambda: runtime.stats["fwd"].state == "running")
    return Collector(runtime, port, capture)


@pytest.fixture
async def collector(tmp_path: Path) -> AsyncIterator[Collector]:
    running = await start_collector(tmp_path)
    yield running
    await running.runtime.shutdown(5)


async def node_send(script: Path, **options: Any) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(script), json.dumps(options), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().strip().splitlines()[-1])


def assert_node_events(records: list[dict[str, Any]], count: int) -> None:
    assert sorted(r["seq"] for r in records) == list(range(count))  # every event once
    for r in records:
        assert r["message"] == f"event {r['seq']}"
        assert r["tag"] == "node.app"
        assert abs(r["timestamp"] - time.time()) < 60
        assert isinstance(r["timestamp"], float)


# -- Python fluent-logger -------------------------------------------------------------------------------


async def test_python_fluent_logger_message_mode(collector: Collector, tmp_path: Path) -> None:
    from fluent import sender

    def send() -> None:
        plain = sender.FluentSender("app", host="127.0.0.1", port=collector.port)
        precise = sender.FluentSender("app", host="127.0.0.1", port=collector.port, nanosecond_precision=True)
        try:
            for i in range(50):
                assert plain.emit("follow", {"from": "userA", "n": i}), plain.last_error
            assert precise.emit_with_time("precise", 1764176400.25, {"log": "with EventTime"}), precise.last_error
        finally:
            plain.close()
            precise.close()

    await asyncio.to_thread(send)
    await wait_for(lambda: len(collector.records) == 51)
    follow = [r for r in collector.records if r["tag"] == "app.follow"]
    assert [r["n"] for r in follow] == list(range(50))
    assert all(r["from"] == "userA" and isinstance(r["timestamp"], float) for r in follow)
    precise = next(r for r in collector.records if r["tag"] == "app.precise")
    assert precise["message"] == "with EventTime"
    assert precise["timestamp"] == pytest.approx(1764176400.25, abs=1e-6)
    assert collector.counters()["acks_sent"] == 0  # Message mode without chunk: nothing to answer


async def test_python_fluent_logger_over_a_unix_socket(tmp_path: Path) -> None:
    from fluent import sender

    path = tmp_path / "fwd.sock"
    running = await start_collector(tmp_path, forward="")
    await running.runtime.shutdown(5)  # the TCP one is not needed; start one on a unix socket instead
    capture = Capture()
    registry = load_registry()
    registry.add(capture.output)
    config = parse_config(
        f"""
inputs: {{fwd: {{type: forward, listen: "unix://{path}"}}}}
outputs: {{got: {{type: capture, inputs: [fwd]}}}}
""",
        "c.yaml",
        registry,
        environ={},
    )
    runtime = Runtime(tmp_path / "unix", HostFacts("h"))
    await runtime.apply(config.graph)
    await wait_for(lambda: path.exists())

    def send() -> None:
        client = sender.FluentSender("local", host=f"unix://{path}")
        try:
            assert client.emit("x", {"log": "over unix"}), client.last_error
        finally:
            client.close()

    await asyncio.to_thread(send)
    await wait_for(lambda: len(capture("got")) == 1)
    assert capture("got")[0]["message"] == "over unix"
    await runtime.shutdown(5)


# -- npm @fluent-org/logger -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["Message", "Forward", "PackedForward", "CompressedPackedForward"])
async def test_node_client_modes_with_acks(collector: Collector, node_client: Path, mode: str) -> None:
    report = await node_send(node_client, port=collector.port, mode=mode, count=500, batch=100)
    assert report == {"sent": 500, "acked": 500, "errors": []}
    assert_node_events(collector.records, 500)
    counters = collector.counters()
    assert counters["acks_sent"] == counters["messages"] >= (500 if mode == "Message" else 1)
    assert counters["protocol_errors"] == 0


async def test_node_client_gets_no_ack_before_delivery(tmp_path: Path, node_client: Path) -> None:
    running = await start_collector(tmp_path, output=", delay: 1.5")  # a slow destination, memory buffer
    try:
        report = await node_send(
            node_client, port=running.port, mode="PackedForward", count=20, batch=20, ackTimeout=400
        )
        assert report["acked"] == 0
        assert report["errors"] and all("AckTimeout" in e for e in report["errors"])
        await wait_for(lambda: len(running.records) == 20, timeout=10)  # delivered later: then acked
    finally:
        await running.runtime.shutdown(5)


async def test_node_client_shared_key_handshake(tmp_path: Path, node_client: Path) -> None:
    running = await start_collector(tmp_path, forward=", shared_key: hush")
    try:
        report = await node_send(
            node_client, port=running.port, mode="CompressedPackedForward", count=100, sharedKey="hush"
        )
        assert report == {"sent": 100, "acked": 100, "errors": []}
        assert_node_events(running.records, 100)
        wrong = await node_send(
            node_client, port=running.port, mode="Forward", count=5, sharedKey="nope", deadline=1500
        )
        assert wrong["acked"] == 0
        assert running.counters()["auth_failures"] >= 1
        assert len(running.records) == 100
    finally:
        await running.runtime.shutdown(5)


async def test_node_client_users_and_tls(tmp_path: Path, node_client: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    running = await start_collector(
        tmp_path,
        forward=f", shared_key: k3y, users: [{{username: bit, password: pa55}}], "
        f"tls: {{cert_file: '{cert}', key_file: '{key}'}}",
    )
    try:
        report = await node_send(
            node_client,
            port=running.port,
            mode="PackedForward",
            count=200,
            sharedKey="k3y",
            username="bit",
            password="pa55",
            ca=str(cert),
        )
        assert report == {"sent": 200, "acked": 200, "errors": []}
        assert_node_events(running.records, 200)
    finally:
        await running.runtime.shutdown(5)
