"""Running the `file` input in a test as the runtime would: emit, acknowledgements, stop, drain."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from collector.acks import AckToken
from collector.api import HostFacts, InputContext
from collector.events import Batch
from collector.testing import wait_for
from collector_plugins.inputs.file.input import FileInput, FileInputConfig

NAME = "files"


class Harness:
    """One `file` input over `tmp/logs`, with its data directory in `tmp/data`.

    Like the runtime, `emit` takes the batch and then releases the input's own reference
    on its ack token; each batch is durable at once unless `hold_acks` is set, in which
    case its token waits in `held` until `ack_all()`. `gate` (when cleared) blocks emit:
    a full downstream channel.
    """

    def __init__(self, tmp_path: Path, **options: Any) -> None:
        self.tmp = tmp_path
        self.logs = tmp_path / "logs"
        self.logs.mkdir(exist_ok=True)
        self.data = tmp_path / "data"
        self.options = {"include": [str(self.logs / "*.log")], **options}
        self.batches: list[Batch] = []
        self.hold_acks = False
        self.held: list[AckToken] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.stuck = 0  # emits waiting at the closed gate
        self.input: FileInput | None = None
        self.task: asyncio.Task[None] | None = None
        self.ctx: InputContext | None = None
        self.losses: dict[str, int] = {}
        self.cls: type[FileInput] = FileInput

    def config(self) -> FileInputConfig:
        return FileInputConfig(type="file", **self.options)

    async def emit(self, batch: Batch) -> None:
        if not self.gate.is_set():
            self.stuck += 1
            try:
                await self.gate.wait()
            finally:
                self.stuck -= 1
        if batch.records:
            self.batches.append(batch)
            if self.hold_acks and batch.ack is not None:
                batch.ack.retain()
                self.held.append(batch.ack)
        if batch.ack is not None:
            batch.ack.release()

    def loss(self, reason: str, events: int) -> None:
        self.losses[reason] = self.losses.get(reason, 0) + events

    async def start(self) -> FileInput:
        self.ctx = InputContext(
            NAME,
            logging.getLogger("test.file_input"),
            self.data,
            HostFacts("testhost"),
            self.emit,
            asyncio.Event(),
            loss=self.loss,
        )
        self.input = self.cls(self.config(), self.ctx)
        await self.input.start()
        self.task = asyncio.create_task(self.input.run(self.ctx))
        await asyncio.wait_for(self.input.scanned.wait(), 5)
        return self.input

    async def stop(self, drain: bool = True) -> None:
        assert self.ctx is not None and self.task is not None and self.input is not None
        self.ctx.stopping.set()
        self.gate.set()
        await asyncio.wait_for(self.task, 10)
        await self.input.stop()
        if drain:
            await self.input.drained()
        self.task = None

    async def restart(self) -> FileInput:
        await self.stop()
        return await self.start()

    def ack_all(self) -> None:
        held, self.held = self.held, []
        for token in held:
            token.release()

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for b in self.batches for r in b.records]

    @property
    def messages(self) -> list[Any]:
        return [r["message"] for r in self.records]

    async def wait_messages(self, count: int, timeout: float = 5.0) -> list[Any]:
        try:
            await wait_for(lambda: len(self.records) >= count, timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"expected {count} records, got {len(self.records)}: {self.messages[-5:]}") from None
        return self.messages

    async def wait_stuck(self) -> None:
        """The input is blocked in `emit` at the closed gate (it read a chunk and cannot hand it on)."""
        await wait_for(lambda: self.stuck > 0, timeout=5)

    async def wait_caught_up(self, timeout: float = 5.0) -> None:
        """Every byte of every file the input tracks is read and committed: nothing more comes without a write.

        What a test waits for before asserting that nothing was read twice (acknowledgements must not be held).
        """
        input_ = self.input
        assert input_ is not None and not self.hold_acks
        await wait_for(lambda: input_.counters()["unread_bytes"] == 0, timeout=timeout)

    async def wait_read_to_end(self, timeout: float = 5.0) -> None:
        """Every file the input tracks is read up to its size on disk now (held partial lines included)."""
        input_ = self.input
        assert input_ is not None

        def done() -> bool:
            files = list(input_.files.files.values())
            return bool(files) and all(tf.read_pos >= os.stat(tf.path).st_size for tf in files)

        await wait_for(done, timeout=timeout)

    def checkpoint(self) -> dict[str, Any]:
        path = self.data / "components" / NAME / "files.json"
        return json.loads(path.read_text()) if path.exists() else {"files": []}

    def offsets(self) -> dict[str, int]:
        return {e["path"]: e["offset"] for e in self.checkpoint()["files"]}


def append(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def numbered(prefix: str, start: int, count: int) -> str:
    return "".join(f"{prefix} {i}\n" for i in range(start, start + count))
