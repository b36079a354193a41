"""Helpers for testing plugins and pipelines (ours and third parties').

- `wait_for(predicate, timeout)`: poll instead of sleeping a fixed time.
- `free_port()`: a port for a listener, allocated per test and passed explicitly.
- `component_context(...)` / `input_context(...)`: what the runtime would give a plugin.
- `CaptureOutput`: an output whose instances keep every record they receive
  (`records`); `Capture` binds it to one test, so the test can read what the
  outputs of a topology it runs received, by output name, with no state shared
  between tests.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from collector.api import ALL_KINDS, ComponentContext, HostFacts, InputContext, Output, OutputConfig
from collector.events import Batch


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, interval: float = 0.01
) -> None:
    """Wait until `predicate()` is true; raise TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def wait_for_sync(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    """`wait_for` for code outside an event loop (a thread, a subprocess's output, a file written elsewhere)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


def component_context(name: str, data_dir: Path, host: str = "testhost") -> ComponentContext:
    return ComponentContext(name, logging.getLogger(f"collector.component.{name}"), data_dir, HostFacts(host))


def input_context(
    name: str, data_dir: Path, emit: Callable[[Batch], Awaitable[None]], host: str = "testhost"
) -> InputContext:
    return InputContext(
        name, logging.getLogger(f"collector.component.{name}"), data_dir, HostFacts(host), emit, asyncio.Event()
    )


class CaptureConfig(OutputConfig):
    type: Literal["capture"] = Field(description="Plugin type.", examples=["capture"])
    delay: float = Field(0.0, description="Seconds to wait in each write (a slow destination).", examples=[0.1])


class CaptureOutput(Output):
    """Keeps every record it receives in `self.records` (register `Capture().output` to read them by name)."""

    type_name = "capture"
    description = "Test output that keeps what it receives."
    Config = CaptureConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS
    capture: ClassVar[Capture | None] = None  # set on the subclass that `Capture` makes

    def __init__(self, config: Any, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.records: list[Any] = []
        if self.capture is not None:
            self.capture.instances.setdefault(ctx.name, []).append(self)

    async def write(self, batch: Batch) -> None:
        if self.config.delay:
            await asyncio.sleep(self.config.delay)  # the configured slow destination
        self.records.extend(batch.records)


class Capture:
    """What the capture outputs of one test received, by output name.

    `output` (and `bind(cls)` for a subclass of `CaptureOutput`) is the plugin class
    to register; every instance the runtime builds from it, including those of
    restarts and reloads, is kept, so `capture(name)` is everything output `name`
    received, in order, even after a shutdown.
    """

    def __init__(self) -> None:
        self.instances: dict[str, list[CaptureOutput]] = {}
        self.output = self.bind(CaptureOutput)

    def bind(self, cls: type[CaptureOutput]) -> type[CaptureOutput]:
        return type(cls.__name__, (cls,), {"capture": self, "__module__": cls.__module__})

    def __call__(self, name: str) -> list[Any]:
        return [r for out in self.instances.get(name, []) for r in out.records]

    def names(self) -> set[str]:
        """Outputs that were built (whether or not they received anything)."""
        return set(self.instances)
