"""`stdout`: write every batch to standard output, as JSON lines or message text.

A batch is encoded in one pass (`encoding.py`) and written with one write and
one flush, in a worker thread: a full pipe (`collector run | less`) then blocks
that thread, not the event loop. The write loops until everything is written,
also when standard output was left non-blocking (the loop sets O_NONBLOCK on a
terminal shared with standard input).
"""

from __future__ import annotations

import asyncio
import io
import os
import select
import sys
from typing import BinaryIO, ClassVar, Literal

from pydantic import Field

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import KINDS, Batch
from collector_plugins.outputs.encoding import encoder_for


class StdoutConfig(OutputConfig):
    type: Literal["stdout"] = Field(description="Writes records to standard output.", examples=["stdout"])
    codec: Literal["json", "text"] = Field(
        default="json",
        description=(
            "`json`: one JSON object per line (raw byte messages decoded as UTF-8, metrics as objects); "
            "`text`: the `message` field only, or the JSON line for a record without one."
        ),
        examples=["json", "text"],
    )


def write_all(stream: BinaryIO, data: bytes) -> None:
    """Write all of `data` to `stream` and flush it, waiting out a non-blocking descriptor's EAGAIN."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        stream.write(data)
        stream.flush()
        return
    if stream is getattr(sys.stdout, "buffer", None):
        sys.stdout.flush()  # text printed through sys.stdout goes first
    stream.flush()
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


class Stdout(Output):
    type_name: ClassVar[str] = "stdout"
    description: ClassVar[str] = "Writes records to standard output as JSON lines or message text."
    Config: ClassVar[type[StdoutConfig]] = StdoutConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)

    config: StdoutConfig

    def __init__(self, config: StdoutConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.stream: BinaryIO | None = None
        """Where to write; None means `sys.stdout.buffer` (looked up per batch). Tests may set a BytesIO."""
        self._encode = encoder_for(config.codec)
        self.events = 0
        self.bytes = 0

    async def write(self, batch: Batch) -> None:
        if not batch.records:
            return
        data = self._encode(batch.records)
        stream = self.stream if self.stream is not None else sys.stdout.buffer
        await asyncio.to_thread(write_all, stream, data)
        self.events += len(batch.records)
        self.bytes += len(data)
