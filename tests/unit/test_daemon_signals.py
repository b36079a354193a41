"""The daemon's signals, in this process: SIGHUP reloads, SIGTERM and SIGINT drain and stop.

Real signals (`os.kill` of this process) reach the handlers the daemon installs on the running loop;
the handlers only record the signal and wake the main loop, which acts on it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from collector.config import load_config
from collector.daemon import Daemon
from collector.testing import Capture, free_port, wait_for
from tests.unit.fakes import make_registry

TOPOLOGY = """\
data_dir: {data}
api: {{listen: "127.0.0.1:{port}"}}
shutdown_grace: 10s
inputs: {{src: {{type: counting, batches: null, interval: 0.005}}}}
outputs:
  out: {{type: capture, inputs: [src], delay: 0.02}}
"""


class Running:
    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "collector.yaml"
        self.base = TOPOLOGY.format(data=tmp_path / "data", port=free_port())
        self.path.write_text(self.base)
        self.capture = Capture()
        self.registry = make_registry(self.capture)
        self.daemon = Daemon(str(self.path), load_config(self.path, self.registry), self.registry)
        self.task: asyncio.Task[int] | None = None

    async def start(self) -> Daemon:
        self.task = asyncio.create_task(self.daemon.run())
        await wait_for(lambda: self.daemon.ready and len(self.capture("out")) > 0)
        return self.daemon

    async def exit_code(self) -> int:
        assert self.task is not None
        return await asyncio.wait_for(self.task, 15)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    # A reload reconfigures the `collector` logger tree (its own handler, no propagation): put it back after.
    tree = logging.getLogger("collector")
    saved = (list(tree.handlers), tree.level, tree.propagate)
    r = Running(tmp_path)
    try:
        yield r
        if r.task is not None and not r.task.done():
            os.kill(os.getpid(), signal.SIGTERM)
            await r.exit_code()
    finally:
        for handler in list(tree.handlers):
            tree.removeHandler(handler)
        for handler in saved[0]:
            tree.addHandler(handler)
        tree.setLevel(saved[1])
        tree.propagate = saved[2]


class Lines(logging.Handler):
    """The messages of one logger (directly on it: a reload replaces the handlers of the tree above)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []
        self.logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Lines:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_sigterm_and_sigint_drain_then_stop(running: Running, sig: signal.Signals) -> None:
    daemon = await running.start()
    os.kill(os.getpid(), sig)
    assert await running.exit_code() == 0
    assert daemon.shutting_down and not daemon.ready
    stats = daemon.runtime.stats
    # Drained: what the input sent before it stopped reached the (slow) output, none of it dropped.
    assert stats["src"].sent_events == stats["out"].sent_events == len(running.capture("out"))
    assert not stats["out"].dropped
    assert [r["seq"] for r in running.capture("out")] == list(range(len(running.capture("out"))))
    assert daemon.reloads == {"success": 0, "failure": 0}


async def test_sighup_applies_a_valid_config_and_keeps_the_old_one_on_an_invalid_one(running: Running) -> None:
    daemon = await running.start()
    src = daemon.runtime.instance("src")
    running.path.write_text(running.base + "  extra: {type: capture, inputs: [src]}\n")
    os.kill(os.getpid(), signal.SIGHUP)
    await wait_for(lambda: daemon.reloads["success"] == 1 and len(running.capture("extra")) > 0)
    assert daemon.runtime.instance("src") is src  # unchanged: kept running, not restarted

    running.path.write_text(running.base + "  broken: {type: no_such_output, inputs: [src]}\n")
    with Lines("collector.daemon") as lines:
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: daemon.reloads["failure"] == 1)
    assert "config reload rejected; keeping the running config" in lines.messages
    assert set(daemon.runtime.running) == {"src", "out", "extra"} and daemon.runtime.instance("src") is src
    assert daemon.ready
    os.kill(os.getpid(), signal.SIGTERM)
    assert await running.exit_code() == 0


async def test_handlers_only_record_signals_the_main_loop_acts_on_them(running: Running) -> None:
    daemon = await running.start()
    running.path.write_text("not: [valid")  # a reload, were one to run, would be counted as a failure
    # Three signals before the loop runs again: the handlers record them; the loop, woken once,
    # sees the stop among them and stops without reloading.
    os.kill(os.getpid(), signal.SIGHUP)
    os.kill(os.getpid(), signal.SIGHUP)
    os.kill(os.getpid(), signal.SIGTERM)
    assert await running.exit_code() == 0
    assert daemon.reloads == {"success": 0, "failure": 0}
    assert daemon.shutting_down


async def test_every_sighup_is_a_reload_even_without_changes(running: Running) -> None:
    daemon = await running.start()
    running.path.write_text(running.base + "  extra: {type: capture, inputs: [src]}\n")
    os.kill(os.getpid(), signal.SIGHUP)
    await wait_for(lambda: daemon.reloads["success"] == 1)
    os.kill(os.getpid(), signal.SIGHUP)  # nothing changed: an empty difference, still a reload
    await wait_for(lambda: daemon.reloads["success"] == 2)
    assert set(daemon.runtime.running) == {"src", "out", "extra"}


async def test_sighup_with_lazy_plugins_loads_a_type_the_old_config_did_not_name(tmp_path: Path) -> None:
    # `collector run`'s daemon: start-up imported only the plugins its file named; a reload naming another
    # type must find it (load_config_lazily on the new file), not validate against the old subset.
    from collector.config import load_config_lazily

    tree = logging.getLogger("collector")
    saved = (list(tree.handlers), tree.level, tree.propagate)
    path = tmp_path / "collector.yaml"
    base = f"""\
data_dir: {tmp_path / "data"}
api: {{enabled: false}}
inputs: {{gen: {{type: generator, rate: 1000}}}}
outputs:
  sink: {{type: blackhole, inputs: [gen]}}
"""
    path.write_text(base)
    config, registry = load_config_lazily(path)
    assert {name for _, name in registry.plugins} == {"generator", "blackhole"}
    daemon = Daemon(str(path), config, registry, lazy_plugins=True)
    task = asyncio.create_task(daemon.run())
    try:
        await wait_for(lambda: daemon.ready)
        path.write_text(base + f'  copy: {{type: file, inputs: [gen], path: "{tmp_path / "out.log"}"}}\n')
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(lambda: daemon.reloads["success"] == 1 and (tmp_path / "out.log").exists())
        assert daemon.reloads["failure"] == 0
        assert ("outputs", "file") in daemon.registry.plugins
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, 15) == 0
        for handler in list(tree.handlers):
            tree.removeHandler(handler)
        for handler in saved[0]:
            tree.addHandler(handler)
        tree.setLevel(saved[1])
        tree.propagate = saved[2]
