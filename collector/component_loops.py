"""Component loops: the supervised body of each input, processor and output.

Design note. The supervisor (collector/supervisor.py) builds a component and
runs one of these loops as its body; when the loop raises, the supervisor
restarts the component with backoff. The loops look the component's channel
and router up in the runtime each time they start, so a reload that rewired
the graph is seen by the next loop.

- An input gets an `InputContext` whose `emit` routes a batch and whose
  `try_emit` routes without waiting (a full channel drops and counts). The
  input's own acknowledgement reference is released once routing retained one
  per consumer.
- A processor takes batches from its channel, runs `process` and routes what
  comes back. A batch that makes `process` raise is run record by record
  (collector/isolation.py): one bad record never costs its neighbours. Only
  when every record fails alone too is the component broken and restarted.
- An output's loop is its `OutputRunner`'s delivery (collector/output_driver.py).

Acknowledgements (collector/acks.py): routing retains a batch's token once per
consumer that receives it (collector/routing.py); a processor's loop passes its
reference on with the batch it returns and releases it when done; an output's
buffer releases once the batch is durable (disk) or delivered (memory).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collector.acks import release
from collector.api import Input, InputContext, Output, Processor
from collector.events import Batch
from collector.isolation import DROP_REASON, Isolated, describe, isolate
from collector.log import kv
from collector.supervisor import Supervised

if TYPE_CHECKING:
    from collector.runtime import Runtime


async def run_input(runtime: Runtime, sup: Supervised) -> None:
    instance = sup.instance
    assert isinstance(instance, Input)
    router = runtime.routers[sup.name]
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


async def run_processor(runtime: Runtime, sup: Supervised) -> None:
    instance = sup.instance
    assert isinstance(instance, Processor)
    channel = runtime.channels[sup.name]
    router = runtime.routers[sup.name]
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
            spec = runtime.graph.components.get(sup.name)
            emits = spec.emits if spec is not None else frozenset((batch.kind,))
            isolated = isolate(process, batch, sup.name, emits, exc)
            for part in isolated.batches:
                stats.sent(part)
                await router.send(part)
            release(batch.ack)  # after routing: the good records are in flight, the isolated ones counted
            if _isolated(runtime, sup, isolated, exc):
                raise
            continue
        if out is not None and out.records:
            stats.sent(out)
            await router.send(out)
        release(batch.ack)  # routing retained what the consumers need


def _isolated(runtime: Runtime, sup: Supervised, isolated: Isolated, exc: Exception) -> bool:
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
    now, _, suppressed = runtime.limiter.check(sup.name, "isolated")
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


async def run_output(runtime: Runtime, sup: Supervised) -> None:
    instance = sup.instance
    assert isinstance(instance, Output)
    # The instance's own config: outputs start before `apply` rewires `runtime.graph` to the new graph.
    await runtime.outputs[sup.name].deliver(instance, instance.config, sup.stopping)
