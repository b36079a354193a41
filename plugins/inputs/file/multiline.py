"""Join consecutive lines of one file into one record (stack traces, pretty-printed dumps).

Two ways to say where a record begins, as in Vector and Fluent Bit:

- `start`: a line matching the pattern begins a new record; any other line belongs
  to the record before it (`^\\d{4}-\\d{2}-\\d{2}` for timestamped logs);
- `continuation`: a line matching the pattern belongs to the record before it; any
  other line begins a new record (`^\\s` for indented Java / Python traces).

Patterns are searched (`re.search`), so anchor them with `^`. The joiner runs after
the line format (`docker`, `cri`), on the message, and keeps the other fields of a
record's first line. Parts are joined with "\\n".

The last record stays held until the next record begins: it may still grow. It is
emitted once it has waited `timeout`, or when the file is finished. While a record is
held, `held_from` is the file offset of its first line: the file input never commits
a position past it, so after a restart the whole record is read again, not its tail.

Nothing is dropped. Input that does not fit is counted instead:

- `orphans`: records that began with a line that is not a start line (lines before
  the first start line of a file, or continuation lines arriving after their record
  was flushed by the timeout);
- `overflows`: records cut because they reached `max_lines` or `max_bytes` (the rest
  continues as a new record);
- `not_text`: records whose message is not text (e.g. a format's unparsable line kept
  as bytes); they pass through unjoined.
"""

from __future__ import annotations

import re
from typing import Any


class MultilineJoiner:
    def __init__(
        self,
        start: re.Pattern[str] | None,
        continuation: re.Pattern[str] | None,
        max_lines: int,
        max_bytes: int,
        timeout: float,
    ) -> None:
        if (start is None) == (continuation is None):
            raise ValueError("give exactly one of start and continuation")
        self.start = start
        self.continuation = continuation
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._held: list[dict[str, Any]] = []
        self._held_size = 0
        self.held_from: int | None = None
        """Smallest file offset where a line of the held record starts; None when nothing is held."""
        self.held_since = 0.0
        """Monotonic time when the held record's first line arrived."""
        self.orphans = 0
        self.overflows = 0
        self.not_text = 0

    @property
    def holding(self) -> bool:
        return bool(self._held)

    def push(self, records: list[dict[str, Any]], starts: list[int], now: float) -> list[dict[str, Any]]:
        """Records completed by these lines (in order); `starts[i]` is the file offset where `records[i]` begins."""
        out: list[dict[str, Any]] = []
        start, continuation = self.start, self.continuation
        for record, offset in zip(records, starts, strict=True):
            message = record.get("message")
            if not isinstance(message, str):
                self.not_text += 1
                if self._held:
                    out.append(self._join())
                out.append(record)
                continue
            if start is not None:
                begins = start.search(message) is not None
            else:
                assert continuation is not None
                begins = continuation.search(message) is None
            held = self._held
            if held and not begins:
                size = self._held_size + 1 + len(message)
                if len(held) < self.max_lines and size <= self.max_bytes:
                    held.append(record)
                    self._held_size = size
                    if self.held_from is not None and offset < self.held_from:
                        self.held_from = offset  # a line format completes records out of order
                    continue
                self.overflows += 1
                out.append(self._join())
            else:
                if held:
                    out.append(self._join())
                if not begins:
                    self.orphans += 1
            self._held = [record]
            self._held_size = len(message)
            self.held_from = offset
            self.held_since = now
        return out

    def due(self, now: float) -> bool:
        """Whether the held record has waited its timeout."""
        return bool(self._held) and now - self.held_since >= self.timeout

    def flush(self) -> list[dict[str, Any]]:
        """The held record, as it is."""
        return [self._join()] if self._held else []

    def _join(self) -> dict[str, Any]:
        held = self._held
        self._held = []
        self._held_size = 0
        self.held_from = None
        if len(held) == 1:
            return held[0]
        record = dict(held[0])
        record["message"] = "\n".join([r["message"] for r in held])
        if any(r.get("truncated") for r in held):
            record["truncated"] = True
        return record
