"""A real Kafka API on loopback: noida-db's packaged binary, started and killed by PID.

`noida-db start --only kafka` runs in the foreground; the `noida-db` console script starts the packaged
binary as a child, so tests run that binary directly, and stopping it (SIGTERM, then SIGKILL) stops the
server. The data directory outlives a stop, so `restart()` brings the same topics back on the same port
(the outage tests). Read back with an aiokafka consumer group, as any consumer of the topic would.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import noida_db

from collector.testing import free_port, wait_for_sync

BINARY = Path(noida_db.__file__).with_name("noida-db")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class KafkaBroker:
    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> KafkaBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir.parent / f"noida-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [
                str(BINARY),
                "start",
                "--only",
                "kafka",
                "--host",
                "127.0.0.1",
                "--kafka-port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
        log.close()
        process = self.process

        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"noida-db exited with {process.returncode}")
            return _accepts(self.port)

        wait_for_sync(up, timeout=20, interval=0.05)
        return self

    def stop(self, kill: bool = False) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if kill:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    async def create_topic(self, name: str, partitions: int) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        finally:
            await admin.close()

    async def read(self, topic: str, count: int, timeout: float = 20.0, group: str = "readback") -> list[Any]:
        """At least `count` messages of `topic` (all partitions) read by a consumer group, or what came in time."""
        import asyncio

        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        messages: list[Any] = []
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while len(messages) < count and loop.time() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for part in batch.values():
                    messages.extend(part)
            # One more short poll: anything beyond `count` (duplicates) is counted too.
            for part in (await consumer.getmany(timeout_ms=200)).values():
                messages.extend(part)
            await consumer.commit()
        finally:
            await consumer.stop()
        return messages
