"""Routing: how a batch gets from its producer to its consumers' channels.

Design note. Each producer (input or processor) has one `Router`, which holds
a `Route` per consumer: the consumer's channel, the kinds it accepts and the
kinds it gets its own copy of. A batch goes only to consumers that accept its
kind. Which consumers get their own copy is planned once per rewiring by
`Graph.copy_plan` (collector/graph.py states the rule): when a batch goes to two
or more consumers, every one whose branch may modify records gets a copy and
the others share the batch, so no branch observes another's changes and
nothing is copied where no branch modifies.

Acknowledgements (collector/acks.py): routing retains a batch's token once per
consumer that receives it, and releases that reference again when the consumer
cannot take the batch (full or closed channel).

`wire` rebuilds every router's routes from the graph in one synchronous step
(no await), so no component ever sees a half-rewired topology.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from collector.acks import release
from collector.channel import Channel, ChannelClosed
from collector.events import Batch
from collector.graph import Graph
from collector.stats import ComponentStats
from collector.tap import Tap


@dataclass(frozen=True)
class Route:
    name: str
    channel: Channel
    kinds: frozenset[str]
    copy_kinds: frozenset[str]  # batches of these kinds are copied for this consumer (Graph.copy_plan)


class Router:
    """Fan-out from one producer to its consumers' channels."""

    def __init__(self, stats: Mapping[str, ComponentStats], name: str) -> None:
        self.stats = stats  # every component's stats, by name (the runtime's, kept current across reloads)
        self.name = name
        self.routes: tuple[Route, ...] = ()
        self.taps: tuple[Tap, ...] = ()  # `collector tap` clients (collector/tap.py); empty almost always

    def _tap(self, batch: Batch) -> None:
        section = self.stats[self.name].section
        for tap in self.taps:
            tap.offer(self.name, section, batch)

    def try_send(self, batch: Batch) -> int:
        """Send without waiting; returns how many consumers could not take the batch (full channel)."""
        if self.taps:
            self._tap(batch)
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
        if self.taps:
            self._tap(batch)
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
                self.stats[self.name].drop("consumer_removed", len(out.records))
                release(ack)


def wire(
    graph: Graph,
    channels: Mapping[str, Channel],
    routers: dict[str, Router],
    stats: Mapping[str, ComponentStats],
) -> None:
    """Point every producer's router at its consumers in `graph` (routers are created as needed, kept otherwise)."""
    plan = graph.copy_plan()
    none: frozenset[str] = frozenset()
    for name, spec in graph.components.items():
        if spec.section == "outputs":
            continue
        router = routers.setdefault(name, Router(stats, name))
        router.routes = tuple(
            Route(c.name, channels[c.name], c.accepts, plan.get((name, c.name), none)) for c in graph.consumers(name)
        )
