"""Real search peers on loopback: osmem-server (OpenSearch API) and noida-db's Elasticsearch API.

Both are static binaries shipped in their PyPI packages, started as one process
each (so that killing the PID stops the server), bound to 127.0.0.1 on a port
allocated per start, and ready once `GET /` answers. Fixtures in tests/conftest.py
start one of each per test session, on first use.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.testing import free_port, wait_for_sync


def _package_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.origin is not None, f"{name} is not installed"
    return Path(spec.origin).parent


@dataclass
class SearchServer:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @classmethod
    def _run(cls, command: list[str], port: int, data_dir: tempfile.TemporaryDirectory[str] | None) -> SearchServer:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        server = cls(f"http://127.0.0.1:{port}", process, data_dir)

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                with urllib.request.urlopen(server.url + "/", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        try:
            wait_for_sync(answers, timeout=30, interval=0.05)
        except TimeoutError:
            server.stop()
            raise
        return server

    @classmethod
    def osmem(cls) -> SearchServer:
        port = free_port()
        binary = _package_dir("osmem_server") / "bin" / "osmem-server"
        return cls._run([str(binary), "-addr", f"127.0.0.1:{port}", "-no-stdin-watch"], port, None)

    @classmethod
    def noida(cls) -> SearchServer:
        port = free_port()
        data = tempfile.TemporaryDirectory(prefix="noida-")
        binary = _package_dir("noida_db") / "noida-db"
        command = [str(binary), "start", "--only", "elasticsearch", "--host", "127.0.0.1"]
        return cls._run([*command, "--elasticsearch-port", str(port), "--data-dir", data.name], port, data)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        if self.data_dir is not None:
            self.data_dir.cleanup()

    # -- reading back --------------------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def documents(self, index: str) -> list[dict[str, Any]]:
        """Every hit (`_id`, `_source`) of `index` (a name or pattern), after a refresh."""
        self.call("POST", f"/{index}/_refresh")
        status, answer = self.call("POST", f"/{index}/_search", {"size": 10000, "query": {"match_all": {}}})
        if status == 404:
            return []
        assert status == 200, answer
        return list(answer["hits"]["hits"])

    def delete(self, index: str) -> None:
        self.call("DELETE", f"/{index}")
