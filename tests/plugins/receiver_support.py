"""Shared test support for the receiving inputs (socket, syslog, forward, journald).

`Sink` stands for the runtime around an input: it records emitted batches, can
hold `emit` back (a full downstream), refuses `try_emit` when told to, keeps
the loss ledger, and releases each batch's ack token at once (everything
delivered) or holds the tokens until the test releases them. `running(input, sink)` starts an input, runs it and
stops it the way the runtime does.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from collector.api import HostFacts, Input, InputContext
from collector.events import Batch


class Sink:
    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.losses: Counter[str] = Counter()
        self.open = asyncio.Event()
        self.open.set()
        self.accept_try_emit = True
        self.waiting = 0  # emits currently held back
        self.release_acks = True  # acknowledge at once, like a runtime whose outputs delivered everything
        self.held: list[Any] = []  # ack tokens not released (release_acks False)

    async def emit(self, batch: Batch) -> None:
        if not self.open.is_set():
            self.waiting += 1
            try:
                await self.open.wait()
            finally:
                self.waiting -= 1
        self.batches.append(batch)
        if batch.ack is not None:
            if self.release_acks:
                batch.ack.release()
            else:
                self.held.append(batch.ack)

    def release_held(self) -> None:
        held, self.held = self.held, []
        for token in held:
            token.release()

    def try_emit(self, batch: Batch) -> bool:
        if not self.accept_try_emit:
            self.losses["channel_full"] += len(batch.records)
            return False
        self.batches.append(batch)
        return True

    def loss(self, reason: str, events: int) -> None:
        self.losses[reason] += events

    @property
    def records(self) -> list[Any]:
        return [r for b in self.batches for r in b.records]

    def messages(self) -> list[Any]:
        return [r.get("message") for r in self.records]


def make_context(tmp_path: Path, sink: Sink, name: str = "under_test") -> InputContext:
    return InputContext(
        name,
        logging.getLogger(f"test.receivers.{name}"),
        tmp_path,
        HostFacts("testhost"),
        sink.emit,
        asyncio.Event(),
        loss=sink.loss,
        try_emit=sink.try_emit,
    )


@asynccontextmanager
async def running(plugin: Input, ctx: InputContext) -> AsyncIterator[asyncio.Task[None]]:
    """Start `plugin`, run it in a task, and on exit stop it as the runtime would (run ends, then stop)."""
    await plugin.start()
    task = asyncio.ensure_future(plugin.run(ctx))
    try:
        await asyncio.sleep(0)
        yield task
    finally:
        ctx.stopping.set()
        try:
            await asyncio.wait_for(task, 10)
        finally:
            await plugin.stop()


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1 / localhost, made with the openssl command line tool."""
    import subprocess

    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def listen_backlog(port: int) -> int:
    """The accept queue a listening TCP socket on loopback has (what `ss -ltn` shows as Send-Q)."""
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
    (line,) = out.splitlines()
    return int(line.split()[2])
