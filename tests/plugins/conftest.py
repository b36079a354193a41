"""Fixtures for plugin tests (the project is installed, editable, by `make test`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collector.api import ComponentContext, HostFacts, InputContext
from collector.events import Batch
from collector.testing import wait_for as _wait_for
from tests.plugins.prometheus_peers import app, node_exporter  # noqa: F401  (fixtures several modules use)


@pytest.fixture
def host() -> HostFacts:
    return HostFacts("testhost", {"region": "eu-west-1"})


@pytest.fixture
def ctx(tmp_path: Path, host: HostFacts) -> ComponentContext:
    return ComponentContext("under_test", logging.getLogger("test.plugin"), tmp_path, host)


class Collected:
    """An input's way out, recording what it emitted."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []

    async def __call__(self, batch: Batch) -> None:
        self.batches.append(batch)

    @property
    def records(self) -> list[Any]:
        return [r for b in self.batches for r in b.records]


@pytest.fixture
def collected() -> Collected:
    return Collected()


@pytest.fixture
def input_ctx(tmp_path: Path, host: HostFacts, collected: Collected) -> InputContext:
    return InputContext("under_test", logging.getLogger("test.plugin"), tmp_path, host, collected, asyncio.Event())


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """`await wait_for(predicate, timeout=5.0)`: a bounded wait instead of a sleep."""
    return _wait_for
