"""Taps: a sampled, rate-limited copy of the records a component emits (`collector tap`, `GET /tap`).

Design note. A `Tap` is one client's view. It is attached to the components
it watches: to the `Router` of an input or processor (what it passes on) and
to the `OutputRunner` of an output (what it sends, once per request, not per
retry). Both hold a tuple `taps`; with no tap attached the routing path pays
one attribute check per batch and nothing per record.

A tap never slows the pipeline: `offer` runs synchronously on the producer's
batch, takes at most what its token bucket allows (the rate limit), samples,
snapshots the taken records (a shallow copy: downstream may change them) into
a bounded queue, and counts what it could not keep. Encoding to JSON happens
in the API handler, off the routing path.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import random
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from collector.events import Batch, Metric

if TYPE_CHECKING:
    from collector.runtime import Runtime

# Records a tap holds for its client before it drops (and counts) the rest.
TAP_QUEUE_RECORDS = 1000


class _Tapped(Protocol):
    taps: tuple[Tap, ...]


class Tap:
    """One client's tap: rate limit, sampling, a bounded queue and what it counted."""

    def __init__(
        self, rate: float, sample: float, capacity: int = TAP_QUEUE_RECORDS, rng: random.Random | None = None
    ) -> None:
        self.rate = rate
        self.sample = sample
        self.capacity = capacity
        self._rng = rng or random.Random()
        self._burst = max(float(rate), 1.0)  # up to one second's worth at once (at least one record)
        self._tokens = self._burst
        self._refilled = time.monotonic()
        self.queue: deque[tuple[str, str, str, Any]] = deque()
        self.ready = asyncio.Event()
        self.rate_limited = 0  # sampled records the rate limit kept out
        self.dropped = 0  # records the queue had no room for (the client reads too slowly)
        self.ended: str | None = None  # why the tap ended, set by the hub

    def offer(self, name: str, section: str, batch: Batch) -> None:
        """Take what the rate limit and sampling allow of `batch`; never blocks, never raises."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        records = batch.records
        if self._tokens < 1.0:  # nothing may pass: skip sampling, count the expected share as rate limited
            self.rate_limited += round(len(records) * self.sample)
            return
        if self.sample < 1.0:
            rnd = self._rng.random
            records = [r for r in records if rnd() < self.sample]
        if not records:
            return
        room = int(self._tokens)
        if len(records) > room:
            self.rate_limited += len(records) - room
            records = records[:room]
            if not records:
                return
        self._tokens -= len(records)
        space = self.capacity - len(self.queue)
        if len(records) > space:
            self.dropped += len(records) - space
            records = records[:space]
        kind = batch.kind
        for record in records:
            self.queue.append((name, section, kind, _snapshot(record)))
        if records:
            self.ready.set()

    def end(self, reason: str) -> None:
        if self.ended is None:
            self.ended = reason
        self.ready.set()


def _snapshot(record: Any) -> Any:
    if isinstance(record, dict):
        return dict(record)
    if isinstance(record, Metric):
        return {slot: getattr(record, slot) for slot in Metric.__slots__}
    return record


def _default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Metric):
        return _snapshot(value)
    return repr(value)


def encode_line(name: str, section: str, kind: str, record: Any) -> bytes:
    """One JSON line: the component, its section, the signal kind and the record."""
    line = {"component": name, "section": section, "kind": kind, "record": record}
    return orjson.dumps(line, default=_default, option=orjson.OPT_NON_STR_KEYS) + b"\n"


class TapHub:
    """Attaches taps to the running topology's components, and ends them when those go away."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._attached: dict[Tap, dict[str, _Tapped]] = {}

    def match(self, patterns: Iterable[str]) -> tuple[list[str], list[str]]:
        """(component names matching any pattern, the patterns that match nothing); globs allowed."""
        names = list(self.runtime.graph.components)
        matched: list[str] = []
        unmatched: list[str] = []
        for pattern in patterns:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                unmatched.append(pattern)
            matched.extend(h for h in hits if h not in matched)
        return matched, unmatched

    def attach(self, tap: Tap, names: Iterable[str]) -> None:
        targets: dict[str, _Tapped] = {}
        for name in names:
            target = self._target(name)
            if target is not None:
                target.taps = (*target.taps, tap)
                targets[name] = target
        self._attached[tap] = targets

    def detach(self, tap: Tap) -> None:
        for target in self._attached.pop(tap, {}).values():
            target.taps = tuple(t for t in target.taps if t is not tap)

    def check(self, tap: Tap) -> None:
        """End `tap` if every component it watches was removed or replaced (a reload); drop the gone ones."""
        targets = self._attached.get(tap)
        if targets is None:
            return
        for name, target in list(targets.items()):
            if self._target(name) is not target:
                target.taps = tuple(t for t in target.taps if t is not tap)
                del targets[name]
        if not targets:
            tap.end("component removed")

    def end_all(self, reason: str) -> None:
        for tap in list(self._attached):
            tap.end(reason)

    def _target(self, name: str) -> _Tapped | None:
        spec = self.runtime.graph.components.get(name)
        if spec is None:
            return None
        if spec.section == "outputs":
            return self.runtime.outputs.get(name)
        return self.runtime.routers.get(name)

    def section(self, name: str) -> str:
        spec = self.runtime.graph.components.get(name)
        return spec.section if spec is not None else ""
