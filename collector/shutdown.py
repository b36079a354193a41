"""Shutdown: stop the inputs, drain everything downstream within the grace period.

Design note. Shutdown goes the other way from start-up: inputs stop, then each
processor and output, in topological order, drains its channel (closed once all
its producers are done) and stops. An output's intake moves what is queued
into its buffer first; a disk buffer keeps what cannot be sent now. Whatever is
still running at the grace deadline is asked to stop, then cancelled shortly
after (`_STOP_REQUEST_WAIT`, `_CANCEL_WAIT`), and the events left in its queue
are counted as dropped. The whole call returns within `grace + slack`.
Acknowledgements that arrived during the drain are committed by the inputs
(`Input.drained`) before it returns, within the same bound.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from collector.api import Input
from collector.defaults import SHUTDOWN_SLACK_SECONDS
from collector.log import kv

if TYPE_CHECKING:
    from collector.runtime import Runtime

log = logging.getLogger("collector.runtime")  # the runtime's logger, as before the split

# After the grace deadline (within SHUTDOWN_SLACK_SECONDS): how long components asked to stop may
# take before they are cancelled, and how long cancelled ones may take to unwind.
_STOP_REQUEST_WAIT = 0.5
_CANCEL_WAIT = 0.5


async def drain_and_stop(runtime: Runtime, grace: float, slack: float = SHUTDOWN_SLACK_SECONDS) -> bool:
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
    components = runtime.graph.components
    order = runtime.graph.order()
    clean = True

    inputs = [runtime.running[n] for n in order if components[n].section == "inputs" and n in runtime.running]
    for sup in inputs:
        sup.request_stop()
    clean &= await await_until([s.task for s in inputs if s.task], deadline)

    for name in order:
        spec = components[name]
        if spec.section == "inputs" or name not in runtime.running:
            continue
        runtime.channels[name].close()
        runner = runtime.outputs.get(name)
        if runner is not None:
            runner.shutting_down = True  # a disk buffer keeps what cannot be sent now
            if runner.intake_task is not None:
                clean &= await await_until([runner.intake_task], deadline)
        sup = runtime.running[name]
        if sup.task is not None:
            clean &= await await_until([sup.task], deadline)

    await _cut_short(runtime, deadline, final)
    for runner in runtime.outputs.values():
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
    runtime.running.clear()
    return clean


async def _cut_short(runtime: Runtime, deadline: float, final: float) -> None:
    """At the grace deadline: ask what still runs to stop, cancel it shortly after, count what is queued."""
    loop = asyncio.get_running_loop()
    late = {name: sup for name, sup in runtime.running.items() if sup.task is not None and not sup.task.done()}
    for name, sup in late.items():
        sup.request_stop()  # an output's delivery stops and leaves its units in the buffer
        if runtime.graph.components[name].section != "outputs":
            sup.task.cancel()  # type: ignore[union-attr]
    for name, channel in runtime.channels.items():
        if channel.events and name in runtime.stats:
            left = channel.events
            runtime.stats[name].drop("shutdown_timeout", left)
            log.error(
                "shutdown grace period ran out; events still queued were dropped",
                extra=kv(component=name, events=left),
            )
    tasks = [sup.task for sup in late.values() if sup.task is not None]
    # A stop request ends delivery at once, but an output's own stop() may wait on its peer.
    await await_until(tasks, min(final, loop.time() + _STOP_REQUEST_WAIT))
    stuck = [t for t in tasks if not t.done()]
    for task in stuck:
        task.cancel()
    if stuck and not await await_until(stuck, min(final, loop.time() + _CANCEL_WAIT)):
        # A task that swallows cancellation is left behind rather than holding up the exit.
        names = [name for name, sup in late.items() if sup.task is not None and not sup.task.done()]
        log.error("components did not stop when cancelled; leaving them", extra=kv(components=",".join(names)))
    for name, sup in late.items():
        if sup.task is not None and sup.task.done() and not sup.task.cancelled() and sup.task.exception():
            log.error(
                "component failed while stopping",
                extra=kv(component=name, error=repr(sup.task.exception())),
            )


async def await_until(tasks: list[Any], deadline: float) -> bool:
    """Wait for `tasks` until the loop time `deadline`; True if they all finished."""
    if not tasks:
        return True
    timeout = max(0.0, deadline - asyncio.get_running_loop().time())
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    return not pending
