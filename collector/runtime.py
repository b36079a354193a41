"""The running topology: what is running, and `Runtime.apply`, the one way it changes.

Design note. `Runtime.apply(graph)` is the one way the topology changes:
start-up is applying a graph to the empty runtime, a reload applies the new
graph to the running one. Applying a diff:

1. stop inputs that were removed or changed (they may hold ports or files);
2. stop processors and outputs that changed, after the batch in hand; their
   channel (and what is queued in it) stays for the replacement;
3. prepare added and changed outputs and processors: channels, stats, buffers;
4. switch to the new graph and rewire every router to it in one step, before
   any new component runs (its loop looks itself up in the graph);
5. start added and changed outputs, then processors (downstream first, so every
   component starts with its consumers already running), then inputs;
6. close the channels of removed processors and outputs: they drain what is
   queued and stop.
Unchanged components keep running untouched, with their counters.

Outputs: each output name owns an `OutputRunner` (collector/output_driver.py):
its channel, the intake task into its buffer, its buffer and its dead-letter
queue. These outlive instances and reloads; only the delivery loop is
supervised and restarted. A reload keeps an output's buffer unless its
`buffer` settings changed.

The runtime's other jobs have a module each:
- routing, from a producer to its consumers' channels: collector/routing.py;
- the supervised loop of each input, processor and output: collector/component_loops.py;
- shutdown within the grace period: collector/shutdown.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from collector.api import Component, ComponentContext, HostFacts
from collector.buffer.base import Buffer
from collector.buffer.memory import MemoryBuffer
from collector.channel import DEFAULT_CHANNEL_EVENTS, Channel
from collector.component_loops import run_input, run_output, run_processor
from collector.defaults import SHUTDOWN_SLACK_SECONDS
from collector.dlq import DeadLetterQueue, dlq_dir
from collector.graph import ComponentSpec, Graph
from collector.log import RepeatLimiter, kv
from collector.output_driver import OutputRunner
from collector.output_settings import BufferSettings
from collector.routing import Router, wire
from collector.shutdown import await_until, drain_and_stop
from collector.stats import ComponentStats
from collector.supervisor import Supervised

# The supervised body of a component, per section (collector/component_loops.py).
_LOOPS: dict[str, Callable[[Runtime, Supervised], Awaitable[None]]] = {
    "inputs": run_input,
    "processors": run_processor,
    "outputs": run_output,
}


class Runtime:
    def __init__(
        self,
        data_dir: Path,
        host: HostFacts,
        limiter: RepeatLimiter | None = None,
        channel_events: int = DEFAULT_CHANNEL_EVENTS,
    ) -> None:
        self.data_dir = data_dir
        self.host = host
        self.limiter = limiter or RepeatLimiter()
        self.channel_events = channel_events
        self.graph = Graph({})
        self.stats: dict[str, ComponentStats] = {}
        self.channels: dict[str, Channel] = {}
        self.routers: dict[str, Router] = {}
        self.running: dict[str, Supervised] = {}
        self.outputs: dict[str, OutputRunner] = {}
        self.inputs_finished = asyncio.Event()
        # How long a removed output may take to drain on reload before it is cut off.
        self.drain_timeout = 30.0

    # -- queries -----------------------------------------------------------------------------------

    def instance(self, name: str) -> Component | None:
        sup = self.running.get(name)
        return sup.instance if sup else None

    def all_stats(self) -> list[ComponentStats]:
        return list(self.stats.values())

    # -- applying a graph --------------------------------------------------------------------------

    async def apply(self, new: Graph) -> dict[str, list[str]]:
        """Move the running topology to `new`; returns the names added, changed, removed, kept."""
        old = self.graph.components
        target = new.components
        kept = [n for n in target if n in old and old[n].identity() == target[n].identity()]
        changed = [n for n in target if n in old and n not in kept]
        added = [n for n in target if n not in old]
        removed = [n for n in old if n not in target]

        # 1-2. Stop what is removed or changed (inputs first: they feed the rest).
        for names in (
            [n for n in removed + changed if old[n].section == "inputs"],
            [n for n in changed if old[n].section != "inputs"],
        ):
            await asyncio.gather(*(self._stop(n) for n in names))

        order = new.order()
        starting = set(changed) | set(added)
        # 3. Give the new consumers their channels, stats and output buffers (this awaits).
        consumers = [target[n] for n in reversed(order) if n in starting and target[n].section != "inputs"]
        for spec in consumers:
            self.channels.setdefault(spec.name, Channel(spec.name, self.channel_events))
            self._ensure_stats(spec)
            if spec.section == "outputs":
                await self._prepare_output(spec, old.get(spec.name))
        # 4. Switch to the new graph and rewire before anything new runs: a component's loop looks
        # itself up in `self.graph` and `self.routers` as soon as it starts. No await from here to
        # the last start, so no component ever sees a half-applied topology.
        self.graph = new
        self._wire()
        # 5. Start consumers, sinks first, then inputs.
        for spec in consumers:
            self._start(spec)
        for name in order:
            spec = target[name]
            if name in starting and spec.section == "inputs":
                self._ensure_stats(spec)
                self._start(spec)
        if any(target[n].section == "inputs" for n in target):
            self.inputs_finished.clear()
        # 6. Drain and retire removed consumers.
        retiring = [n for n in removed if old[n].section != "inputs"]
        for name in retiring:
            self.channels[name].close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_timeout
        await asyncio.gather(*(self._retire(n, deadline) for n in retiring))
        for name in removed:
            self.stats.pop(name, None)
            self.channels.pop(name, None)
            self.routers.pop(name, None)
        return {"added": added, "changed": changed, "removed": removed, "kept": kept}

    async def _prepare_output(self, spec: ComponentSpec, previous: ComponentSpec | None) -> None:
        """Give output `spec` its runner: the existing one, or a new buffer if its buffer settings changed."""
        runner = self.outputs.get(spec.name)
        settings: BufferSettings = spec.config.buffer
        if runner is not None and previous is not None and previous.config.buffer == settings:
            return
        stats = self.stats[spec.name]
        log = logging.getLogger(f"collector.component.{spec.name}")
        if runner is not None:
            # The buffer's type or bounds changed: intake moves to a new buffer. What the old one
            # still holds is not delivered from it any more (a disk buffer keeps it on disk).
            log.warning("buffer settings changed; replacing the buffer", extra=kv(component=spec.name))
            await runner.buffer.close()
        buffer = self._make_buffer(spec.name, settings, stats, log)
        await buffer.open()
        if runner is None:
            dlq = DeadLetterQueue(dlq_dir(self.data_dir, spec.name), spec.name, spec.config.dead_letter.max_bytes)
            runner = OutputRunner(spec.name, self.channels[spec.name], buffer, dlq, stats, log, self.limiter)
            self.outputs[spec.name] = runner
            runner.start_intake()
        else:
            runner.buffer = buffer
        stats.buffer = buffer.metrics
        stats.buffer_condition = buffer.condition
        stats.buffer_type = buffer.kind

    def _make_buffer(self, name: str, settings: BufferSettings, stats: ComponentStats, log: logging.Logger) -> Buffer:
        if settings.type == "memory":
            return MemoryBuffer(
                max_events=settings.events_limit,
                max_bytes=settings.bytes_limit,
                when_full=settings.when_full,
                on_drop=stats.drop,
            )
        from collector.buffer.disk import DiskBuffer

        return DiskBuffer(
            self.data_dir / "buffers" / name,
            max_bytes=settings.bytes_limit,
            when_full=settings.when_full,
            fsync=settings.fsync,
            fsync_interval=settings.fsync_interval,
            on_drop=stats.drop,
            on_corrupt=stats.drop,
            log=log,
        )

    async def _retire(self, name: str, deadline: float) -> None:
        """Let a removed consumer drain until `deadline`, then stop it; close an output's buffer."""
        runner = self.outputs.pop(name, None)
        sup = self.running.pop(name, None)
        tasks = [t for t in (runner.intake_task if runner else None, sup.task if sup else None) if t is not None]
        if not await await_until(tasks, deadline) and sup is not None and sup.task is not None:
            sup.request_stop()
            await asyncio.gather(sup.task, return_exceptions=True)
        if runner is not None:
            if runner.intake_task is not None and not runner.intake_task.done():
                runner.intake_task.cancel()
            await runner.buffer.close()
            runner.dlq.close()

    def _ensure_stats(self, spec: ComponentSpec) -> None:
        st = self.stats.get(spec.name)
        if st is None or st.section != spec.section:
            st = self.stats[spec.name] = ComponentStats(spec.name, spec.section, spec.type_name)
        st.type_name = spec.type_name
        channel = self.channels.get(spec.name)
        st.queue_depth = (lambda: channel.events) if channel is not None else (lambda: 0)

    def _wire(self) -> None:
        wire(self.graph, self.channels, self.routers, self.stats)

    def _context(self, spec: ComponentSpec) -> ComponentContext:
        logger = logging.getLogger(f"collector.component.{spec.name}")
        stats = self.stats[spec.name]
        return ComponentContext(
            spec.name, logger, self.data_dir, self.host, self.all_stats, stats.drop, stats.checkpoint_failed
        )

    def _start(self, spec: ComponentSpec) -> None:
        ctx = self._context(spec)
        stats = self.stats[spec.name]
        stats.state = "starting"

        def build() -> Component:
            instance = spec.plugin(spec.config, ctx)
            stats.extra = instance.counters
            return instance

        loop = _LOOPS[spec.section]

        async def body(sup: Supervised) -> None:
            await loop(self, sup)

        sup = Supervised(spec.name, build, body, stats, ctx.logger, self.limiter)
        if spec.section == "processors":
            sup.on_stop_requested = self.channels[spec.name].interrupt
        self.running[spec.name] = sup
        sup.task = asyncio.create_task(self._supervise(sup), name=f"component:{spec.name}")

    async def _supervise(self, sup: Supervised) -> None:
        try:
            await sup.run()
        finally:
            spec = self.graph.components.get(sup.name)
            current = self.running.get(sup.name) is sup
            if current and spec is not None and spec.section == "inputs" and self._all_inputs_done():
                self.inputs_finished.set()

    def _all_inputs_done(self) -> bool:
        inputs = [n for n, s in self.graph.components.items() if s.section == "inputs"]
        return bool(inputs) and all(self.running[n].finished for n in inputs if n in self.running)

    async def _stop(self, name: str) -> None:
        sup = self.running.pop(name, None)
        if sup is None or sup.task is None:
            return
        sup.request_stop()
        await sup.task

    # -- component loops and shutdown (one module each) ---------------------------------------------

    async def shutdown(self, grace: float, slack: float = SHUTDOWN_SLACK_SECONDS) -> bool:
        """Stop inputs, drain everything downstream within `grace` seconds; True if nothing was cut short.

        See collector/shutdown.py; the whole call returns within `grace + slack`.
        """
        return await drain_and_stop(self, grace, slack)
