"""Records of one log stream -> PutLogEvents event lists that obey every rule of the API.

Pure and synchronous (no I/O), so the rules are unit-tested at their edges and
benchmarked without a network. Per call, for the records bound to one stream:

1. each record becomes one event: `timestamp` in epoch milliseconds (now when
   the record has none), `message` as text (`text` codec: the `message` field,
   bytes decoded as UTF-8 with invalid sequences replaced, the way CloudWatch
   itself stores them; a record without one, or the `json` codec: the record as
   JSON); empty messages, which the API refuses, are counted and skipped;
2. a message longer than the per-event maximum is split into parts, each
   prefixed `[collector: part i/n] `, all with the record's timestamp;
3. events are sorted by timestamp (a stable sort: equal timestamps keep their
   order, so a split message stays in order);
4. the sorted events are cut into requests of at most `max_events` events, at
   most `max_bytes` counted as UTF-8 message bytes + 26 per event, spanning at
   most `max_span_ms`. Cut points come from prefix sums and binary search, so
   the per-event work is a few list comprehensions run in C.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, Literal

import orjson

from collector_plugins.common.record_encoding import json_default
from collector_plugins.outputs.cloudwatch_logs.limits import (
    EVENT_OVERHEAD,
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_BATCH_SPAN_MS,
    max_message_bytes,
)

Codec = Literal["text", "json"]
OVERHEAD = EVENT_OVERHEAD.value
# Room kept in every part of a split message for its marker, whatever the part count.
PART_MARKER_ROOM = len("[collector: part 9999999/9999999] ")
MIN_MESSAGE_BYTES = 1024


@dataclass(slots=True)
class EventRequest:
    """The events of one PutLogEvents call and, per event, the index of the record it came from."""

    events: list[dict[str, Any]]
    owners: list[int]
    nbytes: int  # as the API counts it: UTF-8 message bytes + 26 per event


@dataclass(slots=True)
class Plan:
    requests: list[EventRequest]
    split_records: int = 0  # records whose message was split into parts
    empty_records: int = 0  # records with an empty message (skipped; the API needs at least 1 character)


def _record_json(record: Any) -> str:
    try:
        return orjson.dumps(record, default=json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return orjson.dumps({"unserialisable": repr(record)[:4096]}).decode()


def _text_of(record: Any, message: Any) -> str:
    """The slow path of `text`: anything but a str message."""
    if isinstance(message, bytes | bytearray | memoryview):
        return bytes(message).decode("utf-8", "replace")
    if message is None:
        return _record_json(record)
    return str(message)


def _utf8_sizes(messages: list[str]) -> list[int]:
    """UTF-8 byte length per message; lone surrogates (unencodable) are replaced in place first."""
    try:
        return [len(m) if m.isascii() else len(m.encode()) for m in messages]
    except UnicodeEncodeError:
        for i, m in enumerate(messages):
            if not m.isascii():
                messages[i] = m.encode("utf-8", "replace").decode()
        return [len(m) if m.isascii() else len(m.encode()) for m in messages]


def split_message(message: str, max_message: int) -> list[str]:
    """Cut `message` into marked parts of at most `max_message` UTF-8 bytes, at character boundaries."""
    data = message.encode()
    room = max_message - PART_MARKER_ROOM
    chunks: list[bytes] = []
    start = 0
    while start < len(data):
        end = min(start + room, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # never cut inside a UTF-8 sequence
            end -= 1
        chunks.append(data[start:end])
        start = end
    n = len(chunks)
    return [f"[collector: part {i}/{n}] " + chunk.decode() for i, chunk in enumerate(chunks, 1)]


class EventPlanner:
    """Turns the records of one stream into requests within the (possibly lowered) API limits."""

    def __init__(
        self,
        *,
        codec: Codec = "text",
        max_events: int = MAX_BATCH_EVENTS.value,
        max_bytes: int = MAX_BATCH_BYTES.value,
        max_event_bytes: int | None = None,
        max_span_ms: int = MAX_BATCH_SPAN_MS.value,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.codec = codec
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_message = max_message_bytes(max_event_bytes or max_bytes, max_bytes)
        if self.max_message < MIN_MESSAGE_BYTES:
            raise ValueError(
                f"the per-event limit leaves {self.max_message} bytes per message; at least "
                f"{MIN_MESSAGE_BYTES} are needed"
            )
        self.max_span_ms = max_span_ms
        self.clock = clock

    # -- what the driver's batcher counts ---------------------------------------------------------

    def record_size(self, record: Any) -> int:
        """Bytes `record` adds to a PutLogEvents batch: its message(s) in UTF-8 plus 26 per event."""
        message = record.get("message") if self.codec == "text" and record.__class__ is dict else None
        if message.__class__ is str and message.isascii():  # the common case first
            size = len(message)
        elif message.__class__ is str:
            size = len(message.encode("utf-8", "replace"))
        elif message.__class__ is bytes and message.isascii():
            size = len(message)
        else:
            size = len(self.messages([record])[0].encode("utf-8", "replace"))
        if size <= self.max_message:
            return size + OVERHEAD
        parts = -(-size // (self.max_message - PART_MARKER_ROOM))
        return size + parts * (PART_MARKER_ROOM + OVERHEAD)

    # -- the steps -------------------------------------------------------------------------------

    def messages(self, records: Sequence[Any], codec: Codec | None = None) -> list[str]:
        if (codec or self.codec) == "json":
            return [_record_json(r) for r in records]
        raw = [r.get("message") if r.__class__ is dict else None for r in records]
        return [m if m.__class__ is str else _text_of(r, m) for r, m in zip(records, raw, strict=True)]

    def timestamps(self, records: Sequence[Any]) -> list[int]:
        try:
            return [int(r["timestamp"] * 1000) for r in records]
        except (KeyError, TypeError, ValueError, OverflowError):
            now = int(self.clock() * 1000)
            out = []
            for r in records:
                ts = r.get("timestamp") if isinstance(r, dict) else None
                try:
                    out.append(int(ts * 1000) if ts is not None and not isinstance(ts, bool) else now)
                except (TypeError, ValueError, OverflowError):
                    out.append(now)
            return out

    def plan(self, records: Sequence[Any], owners: Sequence[int] | None = None, codec: Codec | None = None) -> Plan:
        """Requests for `records` (all bound to one stream); `owners[i]` is what events of records[i] report.

        `codec` overrides the planner's own for this call (EMF documents are always sent as their message)."""
        if owners is None:
            owners = range(len(records))
        msgs = self.messages(records, codec)
        ts = self.timestamps(records)
        own = list(owners)
        sizes = _utf8_sizes(msgs)
        plan = Plan([])
        if 0 in sizes:
            keep = [i for i, s in enumerate(sizes) if s]
            plan.empty_records = len(sizes) - len(keep)
            msgs, ts, sizes, own = ([x[i] for i in keep] for x in (msgs, ts, sizes, own))  # type: ignore[assignment]
        if not msgs:
            return plan
        if max(sizes) > self.max_message:
            msgs, ts, sizes, own, plan.split_records = self._split(msgs, ts, sizes, own)
        in_order = sorted(ts)
        if in_order != ts:
            order = sorted(range(len(ts)), key=ts.__getitem__)  # stable: ties keep their order
            msgs = [msgs[i] for i in order]
            sizes = [sizes[i] for i in order]
            own = [own[i] for i in order]
            ts = in_order
        events = [{"timestamp": t, "message": m} for t, m in zip(ts, msgs, strict=True)]
        plan.requests = self._cut(events, ts, sizes, own)
        return plan

    def _split(
        self, msgs: list[str], ts: list[int], sizes: list[int], own: list[int]
    ) -> tuple[list[str], list[int], list[int], list[int], int]:
        out_m: list[str] = []
        out_t: list[int] = []
        out_o: list[int] = []
        split = 0
        for m, t, s, o in zip(msgs, ts, sizes, own, strict=True):
            if s <= self.max_message:
                out_m.append(m)
                out_t.append(t)
                out_o.append(o)
                continue
            parts = split_message(m, self.max_message)
            split += 1
            out_m.extend(parts)
            out_t.extend([t] * len(parts))
            out_o.extend([o] * len(parts))
        return out_m, out_t, _utf8_sizes(out_m), out_o, split

    def _cut(self, events: list[dict[str, Any]], ts: list[int], sizes: list[int], own: list[int]) -> list[EventRequest]:
        n = len(events)
        cum = list(accumulate((s + OVERHEAD for s in sizes), initial=0))  # cum[b] - cum[a]: bytes of [a, b)
        requests = []
        start = 0
        while start < n:
            by_bytes = bisect_right(cum, cum[start] + self.max_bytes, lo=start + 1) - 1
            by_span = bisect_right(ts, ts[start] + self.max_span_ms, lo=start)
            end = min(n, start + self.max_events, by_bytes, by_span)
            requests.append(EventRequest(events[start:end], own[start:end], cum[end] - cum[start]))
            start = end
        return requests
