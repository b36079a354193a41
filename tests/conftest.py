from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.installed import installed
from tests.kafka_broker import KafkaBroker
from tests.moto import MotoServer

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
    """The wheel and venv of tests/installed.py are built on first use; remove them at the end."""
    yield
    if installed.cache_info().currsize:
        import shutil

        shutil.rmtree(installed().venv.parent, ignore_errors=True)


@pytest.fixture
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A fresh noida-db Kafka API on a free loopback port with its own data directory, killed by PID after."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka") / "data").start()
    try:
        yield broker
    finally:
        broker.stop()
