"""A moto server, the AWS emulator the AWS tests talk to, run as a separate process on loopback.

One server serves the whole test session (it starts in about a second); each
test that asks for `moto` gets it reset to an empty state. Clients reach it
through `endpoint_url`; credentials come from the environment (dummy values set
in tests/conftest.py), exactly as the standard credential chain finds them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from typing import Any

from collector.testing import free_port, wait_for_sync

REGION = "eu-west-1"


@dataclass
class MotoServer:
    endpoint_url: str
    process: subprocess.Popen[bytes]
    region: str = REGION

    @classmethod
    def start(cls) -> MotoServer:
        port = free_port()
        exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which("moto_server")
        command = [exe] if exe else [sys.executable, "-m", "moto.server"]
        process = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = cls(f"http://127.0.0.1:{port}", process)

        def answers() -> bool:
            if process.poll() is not None:
                raise RuntimeError("exited")
            try:
                with urllib.request.urlopen(f"{server.endpoint_url}/moto-api/", timeout=1) as response:
                    return response.status == 200
            except OSError:
                return False

        try:
            wait_for_sync(answers, timeout=30, interval=0.1)
        except (TimeoutError, RuntimeError):
            process.kill()
            raise RuntimeError(f"moto_server did not start on port {port}") from None
        return server

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def client(self, service: str) -> Any:
        """A boto3 client for reading back what the collector wrote."""
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region)
