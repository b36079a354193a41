"""`alerts`: emits the notifications of the `alert` outputs publishing on its hub as log records.

Route it to the outputs that deliver notifications (`webhook`, `sns`, `exec`) or keep them as logs
(`cloudwatch_logs`, `file`). Each batch carries an acknowledgement token: once every output it was
routed to has it safe (durable in a disk buffer, or delivered from a memory buffer), the `alert`
output drops the notifications from its saved outbox (plugins/common/alerting/hub.py). Until then a
restart publishes them again, with the same `id`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar, Literal

from pydantic import Field

from collector.acks import AckTracker
from collector.api import ComponentContext, Input, InputConfig, InputContext
from collector.events import LOGS, Batch
from collector_plugins.common.alerting.hub import hub

MAX_BATCH = 100


class AlertsConfig(InputConfig):
    type: Literal["alerts"] = Field(description="Notifications of `alert` outputs.", examples=["alerts"])
    hub: str = Field(
        "alerts",
        min_length=1,
        description="The hub to take notifications from: the `hub` of the `alert` outputs.",
        examples=["alerts"],
    )


class AlertsInput(Input):
    type_name: ClassVar[str] = "alerts"
    description: ClassVar[str] = "Notifications of `alert` outputs as log records, for notifier outputs."
    Config: ClassVar[type[AlertsConfig]] = AlertsConfig
    emits: ClassVar[frozenset[str]] = frozenset({LOGS})

    config: AlertsConfig

    def __init__(self, config: AlertsConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._hub = hub(ctx.data_dir, config.hub)
        self.emitted = 0
        self.acknowledged = 0
        self._pending: list[tuple[int, list[dict[str, Any]]]] = []
        self._sequence = 0

    def _done(self, position: int) -> None:
        # The tracker commits in order: every batch up to `position` is safe.
        pending = self._pending
        while pending and pending[0][0] <= position:
            _, notes = pending.pop(0)
            self.acknowledged += len(notes)
            self._hub.acknowledged(notes)

    async def run(self, ctx: InputContext) -> None:
        tracker = AckTracker(self._done)
        h = self._hub
        h.consumers += 1
        try:
            while not ctx.stopping.is_set():
                notes = h.take(MAX_BATCH)
                if not notes:
                    waiter = asyncio.ensure_future(h.ready.wait())
                    stopper = asyncio.ensure_future(ctx.stopping.wait())
                    try:
                        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for task in (waiter, stopper):
                            task.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await task
                    continue
                # Each record is a copy: downstream outputs may change records, the outbox keeps its own.
                records = [dict(n) for n in notes]
                self._sequence += 1
                self._pending.append((self._sequence, notes))
                token = tracker.token(self._sequence)
                await ctx.emit(Batch(LOGS, records, sum(len(n.get("message", "")) for n in notes), ack=token))
                self.emitted += len(records)
        finally:
            h.consumers -= 1

    def counters(self) -> dict[str, float]:
        return {"notifications_emitted": self.emitted, "notifications_acknowledged": self.acknowledged}
