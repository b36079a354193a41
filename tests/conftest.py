from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.installed import release as release_installation
from tests.kafka_broker import KafkaBroker
from tests.moto import MotoServer
from tests.search_peers import SearchServer

# No test may reach instance metadata or a real AWS account.
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_EMF_ENVIRONMENT", "Local")
# Any AWS client a test forgets to point at moto goes to a closed loopback port, never to AWS
# (botocore reads AWS_ENDPOINT_URL; an explicit endpoint_url in a config or a test wins over it).
os.environ.setdefault("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server process on loopback for the whole session (started on first use)."""
    server = MotoServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    """The session's moto server, emptied for this test."""
    moto_server.reset()
    return moto_server


@pytest.fixture(scope="session", autouse=True)
def _close_the_xray_sdks_global_socket() -> Iterator[None]:
    """Importing aws_xray_sdk.core creates a global recorder whose UDP emitter opens a socket nobody closes."""
    yield
    import sys

    core = sys.modules.get("aws_xray_sdk.core")
    if core is not None:
        core.xray_recorder.emitter._socket.close()


@pytest.fixture(scope="session", autouse=True)
def _remove_the_installed_wheel() -> Iterator[None]:
    """The wheel and venv of tests/installed.py are built on first use; the last process using them removes them."""
    yield
    release_installation()


@pytest.fixture(scope="session")
def osmem() -> Iterator[SearchServer]:
    """One osmem-server (OpenSearch API) for the session; tests use index names of their own."""
    server = SearchServer.osmem()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def noida_es() -> Iterator[SearchServer]:
    """One noida-db Elasticsearch API for the session (its own data directory); own index names per test."""
    server = SearchServer.noida()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def http_sink() -> Iterator[str]:
    """A loopback HTTP server (a thread) answering 204 to every POST/PUT: the base URL."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def _take(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()

        do_POST = do_PUT = _take

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A fresh noida-db Kafka API on a free loopback port with its own data directory, killed by PID after."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka") / "data").start()
    try:
        yield broker
    finally:
        broker.stop()
