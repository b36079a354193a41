"""How an `alert` output hands its notifications to the `alerts` inputs of the same process.

Notifications must reach the destinations through the shared output driver (retries, dead letters,
counters), so the `alert` output does not send them itself: it puts them in an outbox that is part
of its saved state (written atomically before anything is published: a crash loses none) and
publishes them on a hub; an `alerts` input takes them from the hub and emits them as log records,
which any output consumes (`webhook`, `sns`, `exec`, `cloudwatch_logs`, `file`...). When the input's
batch is acknowledged (durable in a disk buffer, or delivered from a memory buffer), the hub tells
the output, which takes the notifications out of its outbox. Delivery is at least once: a crash
between delivery and acknowledgement sends a notification again, with the same `id`.

Hubs are per data directory and hub name, so two collectors (or tests) in one process never meet.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_QUEUED = 10_000  # notifications waiting for an input; more are left in the outboxes (re-published)


class Hub:
    def __init__(self) -> None:
        self.queue: deque[dict[str, Any]] = deque()
        self.ready = asyncio.Event()
        self.consumers = 0
        self._done: dict[str, Callable[[list[str]], None]] = {}  # source -> its outbox's removal

    def publish(self, source: str, notes: list[dict[str, Any]], done: Callable[[list[str]], None]) -> int:
        """Queue `notes` (at most MAX_QUEUED wait); `done(ids)` is called once they are acknowledged."""
        self._done[source] = done
        room = max(0, MAX_QUEUED - len(self.queue))
        self.queue.extend(notes[:room])
        if notes[:room]:
            self.ready.set()
        return min(room, len(notes))

    def take(self, limit: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while self.queue and len(out) < limit:
            out.append(self.queue.popleft())
        if not self.queue:
            self.ready.clear()
        return out

    def acknowledged(self, notes: list[dict[str, Any]]) -> None:
        by_source: dict[str, list[str]] = {}
        for note in notes:
            by_source.setdefault(note.get("source", ""), []).append(note["id"])
        for source, ids in by_source.items():
            done = self._done.get(source)
            if done is not None:
                done(ids)

    def forget(self, source: str) -> None:
        """The output stopped: its queued notifications stay in its outbox and are published by the next one."""
        self._done.pop(source, None)
        kept = [n for n in self.queue if n.get("source") != source]
        self.queue.clear()
        self.queue.extend(kept)
        if not self.queue:
            self.ready.clear()


_HUBS: dict[tuple[str, str], Hub] = {}


def hub(data_dir: Path, name: str) -> Hub:
    key = (str(Path(data_dir).resolve()), name)
    found = _HUBS.get(key)
    if found is None:
        found = _HUBS[key] = Hub()
    return found
