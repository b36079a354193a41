"""The running topology: channels, routers and supervised components.

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

Shutdown goes the other way: inputs stop, then each processor and output, in
topological order, drains its channel (closed once all its producers are done)
and stops. Whatever is still running at the grace deadline is cancelled and
the events left in its queue are counted as dropped.

Outputs: each output name owns an `OutputRunner` (collector/driver.py): its
channel, the intake task into its buffer, its buffer and its dead-letter queue.
These outlive instances and reloads; only the delivery loop is supervised and
restarted. A reload keeps an output's buffer unless its `buffer` settings
changed.

Acknowledgements (collector/acks.py): routing retains a batch's token once per
consumer that receives it; a processor's loop passes its reference on with the
batch it returns and releases it when done; an output's buffer releases once
the batch is durable (disk) or delivered (memory).

Routing: a producer's `Router` holds the channels of its consumers. A batch
goes only to consumers that accept its kind. Which consumers get their own copy
is planned once per rewiring by `Graph.copy_plan` (collector/graph.py states
the rule): when a batch goes to two or more consumers, every one whose branch
may modify records gets a copy and the others share the batch, so no branch
observes another's changes and nothing is copied where no branch modifies.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.acks import release
from collector.api import Component, ComponentContext, HostFacts, Input, InputContext, Output, Processor
from collector.buffer.base import Buffer
from collector.buffer.memory import MemoryBuffer
from collector.channel import DEFAULT_CHANNEL_EVENTS, Channel, ChannelClosed
from collector.defaults import SHUTDOWN_SLACK_SECONDS
from collector.dlq import DeadLetterQueue, dlq_dir
from collector.driver import OutputRunner
from collector.events import Batch
from collector.graph import ComponentSpec, Graph
from collector.isolation import DROP_REASON, Isolated, describe, isolate
from collector.log import RepeatLimiter, kv
from collector.settings import BufferSettings
from collector.stats import ComponentStats
from collector.supervisor import Supervised

log = logging.getLogger("collector.runtime")

# After the grace deadline (within SHUTDOWN_SLACK_SECONDS): how long components asked to stop may
# take before they are cancelled, and how long cancelled ones may take to unwind.
_STOP_REQUEST_WAIT = 0.5
_CANCEL_WAIT = 0.5


@dataclass(frozen=True)
class Route:
    name: str
    channel: Channel
    kinds: frozenset[str]
    copy_kinds: frozenset[str]  # batches of these kinds are copied for this consumer (Graph.copy_plan)


class Router:
    """Fan-out from one producer to its consumers' channels."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self.runtime = runtime
        self.name = name
        self.routes: tuple[Route, ...] = ()

    def try_send(self, batch: Batch) -> int:
        """Send without waiting; returns how many consumers could not take the batch (full channel)."""
        ack = batch.ack
        refused = 0
        for route in self.routes:
            if batch.kind not in route.kinds:
                continue
            out = batch.copy() if batch.kind in route.copy_kinds else batch
            if ack is not None:
                ack.retain()
            try:
                taken = route.channel.try_send(out)
            except ChannelClosed:
                taken = False
            if not taken:
                refused += 1
                release(ack)
        return refused

    async def send(self, batch: Batch) -> None:
        ack = batch.ack
        for route in self.routes:
            if batch.kind not in route.kinds:
                continue
            out = batch.copy() if batch.kind in route.copy_kinds else batch
            if ack is not None:
                ack.retain()  # the consumer's reference, released when it is done
            try:
                if not route.channel.try_send(out):
                    await route.channel.send(out)
            except ChannelClosed:
                # The consumer was removed by a reload while this batch was in hand.
                self.runtime.stats[self.name].drop("consumer_removed", len(out.records))
                release(ack)


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
        if not await self._await_until(tasks, deadline) and sup is not None and sup.task is not None:
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
        components = self.graph.components
        plan = self.graph.copy_plan()
        none: frozenset[str] = frozenset()
        for name, spec in components.items():
            if spec.section == "outputs":
                continue
            router = self.routers.setdefault(name, Router(self, name))
            router.routes = tuple(
                Route(c.name, self.channels[c.name], c.accepts, plan.get((name, c.name), none))
                for c in self.graph.consumers(name)
            )

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

        body = {"inputs": self._run_input, "processors": self._run_processor, "outputs": self._run_output}
        sup = Supervised(spec.name, build, body[spec.section], stats, ctx.logger, self.limiter)
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

    # -- component loops ---------------------------------------------------------------------------

    async def _run_input(self, sup: Supervised) -> None:
        instance = sup.instance
        assert isinstance(instance, Input)
        router = self.routers[sup.name]
        stats = sup.stats

        async def emit(batch: Batch) -> None:
            if batch.records:
                stats.sent(batch)
                await router.send(batch)
            release(batch.ack)  # the input's own reference: routing retained one per consumer

        def try_emit(batch: Batch) -> bool:
            refused = 0
            if batch.records:
                stats.sent(batch)
                refused = router.try_send(batch)
                if refused:
                    stats.drop("channel_full", len(batch.records) * refused)
            release(batch.ack)
            return refused == 0

        base = instance.ctx
        ctx = InputContext(
            base.name,
            base.logger,
            base.data_dir,
            base.host,
            emit,
            sup.stopping,
            base.runtime_stats,
            base.loss,
            try_emit,
            base.checkpoint_failed,
        )
        await instance.run(ctx)

    async def _run_processor(self, sup: Supervised) -> None:
        instance = sup.instance
        assert isinstance(instance, Processor)
        channel = self.channels[sup.name]
        router = self.routers[sup.name]
        stats = sup.stats
        process = instance.process
        while not sup.stopping.is_set():
            batch = await channel.receive()
            if batch is None:
                return
            stats.received(batch)
            try:
                out = process(batch)
            except Exception as exc:
                # One bad record must not cost its neighbours: run the batch record by record (collector/isolation.py).
                # The graph's kinds are resolved (a pass-through processor emits what it gets); one that a
                # reload removed drains its channel under a graph without it.
                spec = self.graph.components.get(sup.name)
                emits = spec.emits if spec is not None else frozenset((batch.kind,))
                isolated = isolate(process, batch, sup.name, emits, exc)
                for part in isolated.batches:
                    stats.sent(part)
                    await router.send(part)
                release(batch.ack)  # after routing: the good records are in flight, the isolated ones counted
                if self._isolated(sup, isolated, exc):
                    raise
                continue
            if out is not None and out.records:
                stats.sent(out)
                await router.send(out)
            release(batch.ack)  # routing retained what the consumers need

    def _isolated(self, sup: Supervised, isolated: Isolated, exc: Exception) -> bool:
        """Count and log what a processor's exception cost; True if every record failed alone too.

        Then the component itself is broken, not a record: the supervisor restarts it (with backoff).
        Otherwise the exception is counted and logged here, once per interval, and the loop goes on.
        """
        stats = sup.stats
        if isolated.dropped:
            stats.drop(DROP_REASON, isolated.dropped)
        stats.isolated_events += isolated.kept
        if isolated.component_broken:
            return True
        stats.errors += 1
        stats.last_error = isolated.error or describe(exc)  # no record failed alone: a fault of the batch call
        now, _, suppressed = self.limiter.check(sup.name, "isolated")
        if now:
            sup.log.warning(
                "processor raised on a batch; its records were run one by one and the failing ones isolated",
                extra=kv(
                    component=sup.name,
                    error=stats.last_error,
                    failed=isolated.failed,
                    tagged=isolated.kept,
                    dropped=isolated.dropped,
                    repeats_suppressed=suppressed,
                ),
            )
        return False

    async def _run_output(self, sup: Supervised) -> None:
        instance = sup.instance
        assert isinstance(instance, Output)
        # The instance's own config: outputs start before `apply` rewires `self.graph` to the new graph.
        await self.outputs[sup.name].deliver(instance, instance.config, sup.stopping)

    # -- shutdown ----------------------------------------------------------------------------------

    async def shutdown(self, grace: float, slack: float = SHUTDOWN_SLACK_SECONDS) -> bool:
        """Stop inputs, drain everything downstream within `grace` seconds; True if nothing was cut short.

        `grace` bounds the drain, all stages together; the whole call returns within `grace + slack`.
        At the grace deadline every component still running is asked to stop (an output's delivery
        leaves its unsent units in the buffer), then cancelled a moment later, whatever it was doing
        (a write to a peer that stopped reading, an AWS call waiting for its read timeout, its own
        `stop()`). What is then left in memory is counted as dropped; a disk buffer keeps it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        final = deadline + slack  # the upper bound of this whole call
        components = self.graph.components
        order = self.graph.order()
        clean = True

        inputs = [self.running[n] for n in order if components[n].section == "inputs" and n in self.running]
        for sup in inputs:
            sup.request_stop()
        clean &= await self._await_until([s.task for s in inputs if s.task], deadline)

        for name in order:
            spec = components[name]
            if spec.section == "inputs" or name not in self.running:
                continue
            self.channels[name].close()
            runner = self.outputs.get(name)
            if runner is not None:
                runner.shutting_down = True  # a disk buffer keeps what cannot be sent now
                if runner.intake_task is not None:
                    clean &= await self._await_until([runner.intake_task], deadline)
            sup = self.running[name]
            if sup.task is not None:
                clean &= await self._await_until([sup.task], deadline)

        await self._cut_short(deadline, final)
        for runner in self.outputs.values():
            if runner.intake_task is not None and not runner.intake_task.done():
                runner.intake_task.cancel()
            await runner.buffer.close()  # memory: counts what is left; disk: keeps it
            runner.dlq.close()
        # Acknowledgements that arrived during the drain: let inputs commit them, within the bound.
        for sup in inputs:
            if isinstance(sup.retired, Input):
                try:
                    await asyncio.wait_for(sup.retired.drained(), timeout=max(0.0, final - loop.time()))
                except Exception as exc:
                    log.error(
                        "input failed to commit its position at shutdown",
                        extra=kv(component=sup.name, error=f"{type(exc).__name__}: {exc}"),
                    )
        self.running.clear()
        return clean

    async def _cut_short(self, deadline: float, final: float) -> None:
        """At the grace deadline: ask what still runs to stop, cancel it shortly after, count what is queued."""
        loop = asyncio.get_running_loop()
        late = {name: sup for name, sup in self.running.items() if sup.task is not None and not sup.task.done()}
        for name, sup in late.items():
            sup.request_stop()  # an output's delivery stops and leaves its units in the buffer
            if self.graph.components[name].section != "outputs":
                sup.task.cancel()  # type: ignore[union-attr]
        for name, channel in self.channels.items():
            if channel.events and name in self.stats:
                left = channel.events
                self.stats[name].drop("shutdown_timeout", left)
                log.error(
                    "shutdown grace period ran out; events still queued were dropped",
                    extra=kv(component=name, events=left),
                )
        tasks = [sup.task for sup in late.values() if sup.task is not None]
        # A stop request ends delivery at once, but an output's own stop() may wait on its peer.
        await self._await_until(tasks, min(final, loop.time() + _STOP_REQUEST_WAIT))
        stuck = [t for t in tasks if not t.done()]
        for task in stuck:
            task.cancel()
        if stuck and not await self._await_until(stuck, min(final, loop.time() + _CANCEL_WAIT)):
            # A task that swallows cancellation is left behind rather than holding up the exit.
            names = [name for name, sup in late.items() if sup.task is not None and not sup.task.done()]
            log.error("components did not stop when cancelled; leaving them", extra=kv(components=",".join(names)))
        for name, sup in late.items():
            if sup.task is not None and sup.task.done() and not sup.task.cancelled() and sup.task.exception():
                log.error(
                    "component failed while stopping",
                    extra=kv(component=name, error=repr(sup.task.exception())),
                )

    @staticmethod
    async def _await_until(tasks: list[Any], deadline: float) -> bool:
        if not tasks:
            return True
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        return not pending
