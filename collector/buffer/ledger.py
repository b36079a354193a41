"""The disk buffer's committed position: in memory (`CommitTracker`) and on disk (`ledger.json`).

`ledger.json` holds the committed position (segment id, byte offset of the
first frame not yet acknowledged) and figures that save a scan at start-up:
records before the offset in that segment, and size and record count of each
sealed segment. It is replaced atomically (write a temporary file, fsync,
rename, fsync the directory) and carries a crc32 of its content, so a reader
sees either the previous or the next ledger, and a damaged one is recognised
(the buffer then replays from its oldest segment: duplicates, never loss).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.checkpoint import replace_durably

LEDGER_FILE = "ledger.json"
_TMP_SUFFIX = ".tmp"  # the temporary file `replace_durably` writes
_VERSION = 1


class LedgerError(ValueError):
    """The ledger file exists but cannot be trusted."""


@dataclass(slots=True)
class LedgerState:
    segment: int
    offset: int
    events_before: int = 0  # records in `segment` before `offset` (figures only)
    sealed: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (bytes, records), figures only

    def to_json(self) -> bytes:
        body = {
            "segment": self.segment,
            "offset": self.offset,
            "events_before": self.events_before,
            "sealed": {str(k): list(v) for k, v in sorted(self.sealed.items())},
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"))
        crc = zlib.crc32(text.encode())
        return json.dumps({"version": _VERSION, "crc": crc, "state": body}, sort_keys=True).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes) -> LedgerState:
        try:
            doc = json.loads(data)
            body = doc["state"]
            if doc["version"] != _VERSION:
                raise LedgerError(f"unknown ledger version {doc['version']!r}")
            text = json.dumps(body, sort_keys=True, separators=(",", ":"))
            if zlib.crc32(text.encode()) != doc["crc"]:
                raise LedgerError("ledger checksum mismatch")
            state = cls(
                _count(body["segment"]),
                _count(body["offset"]),
                _count(body["events_before"]),
                {int(k): (_count(v[0]), _count(v[1])) for k, v in body["sealed"].items()},
            )
        except LedgerError:
            raise
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise LedgerError(f"unreadable ledger: {type(exc).__name__}: {exc}") from None
        return state


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise LedgerError(f"not a count: {value!r}")
    return value


def read_ledger(directory: Path) -> LedgerState | None:
    """The persisted state; None when there is no ledger; `LedgerError` when it is damaged."""
    try:
        data = (directory / LEDGER_FILE).read_bytes()
    except FileNotFoundError:
        return None
    return LedgerState.from_json(data)


def write_ledger(directory: Path, data: bytes) -> None:
    """Replace the ledger atomically and durably (blocking: run it in a thread)."""
    replace_durably(directory / LEDGER_FILE, data)


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def persist_then_unlink(directory: Path, ledger: bytes | None, doomed: list[Path]) -> tuple[int, OSError | None]:
    """Write `ledger` (if not None) durably, then unlink the `doomed` segments it no longer needs (blocking).

    On a full disk (ENOSPC, EDQUOT) the ledger may not fit until they are gone: then `doomed` (all
    acknowledged) is unlinked first and the ledger written again; a crash in between leaves the old
    ledger naming a missing segment, and recovery starts at the oldest one left (duplicates, no loss).
    Returns (failed ledger writes, the error if the ledger is still not written); `doomed` is gone
    unless an exception is raised.
    """
    failed = 0
    if ledger is not None:
        try:
            write_ledger(directory, ledger)
            ledger = None
        except OSError as exc:
            if not doomed or exc.errno not in _DISK_FULL:
                raise
            failed = 1
    for path in doomed:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if ledger is not None:
        try:
            write_ledger(directory, ledger)
        except OSError as exc:
            return failed + 1, exc
    return failed, None


def remove_stale_tmp(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(directory / (LEDGER_FILE + _TMP_SUFFIX))


@dataclass(slots=True)
class InFlight:
    """A frame handed out (or a damaged region skipped) and not yet committed."""

    id: int | None  # None: a skipped region, done by definition
    segment: int
    end: int  # where the next frame starts
    records: int
    created_ms: int


class CommitTracker:
    """Turns out-of-order unit acknowledgements into a committed position.

    Units are numbered in delivery order from `next_id`; `add` is called for
    each one as it is handed out (and for each skipped region). The committed
    position advances over the longest prefix of acknowledged entries.
    Acknowledged ids survive `forget_inflight` (a rewind): the units come out
    again with the same ids and are committed as soon as they are reached,
    unless damage found since shifted the ids (`forget_acks_from`).
    """

    __slots__ = ("acked", "events_before", "inflight", "next_id", "offset", "segment")

    def __init__(self, segment: int, offset: int, events_before: int, next_id: int) -> None:
        self.segment = segment
        self.offset = offset
        self.events_before = events_before
        self.next_id = next_id  # the id of the first unit after the committed position
        self.inflight: deque[InFlight] = deque()
        self.acked: set[int] = set()

    def add(self, entry: InFlight) -> int:
        """Records newly committed by handing out `entry` (a skipped region, or a unit acknowledged before a rewind)."""
        self.inflight.append(entry)
        # Invariant: the head of `inflight` is a unit not yet acknowledged, so only a new head can move the position.
        if len(self.inflight) == 1 and (entry.id is None or entry.id in self.acked):
            return self._advance()
        return 0

    def ack(self, unit_id: int) -> int:
        """Records newly committed by acknowledging `unit_id` (0 when the position did not move)."""
        if unit_id < self.next_id:
            return 0  # already committed (a unit acknowledged twice, or from before a rewind)
        self.acked.add(unit_id)
        inflight = self.inflight
        if inflight and inflight[0].id == unit_id:
            return self._advance()
        return 0

    def _advance(self) -> int:
        inflight, acked = self.inflight, self.acked
        committed = 0
        while inflight:
            head = inflight[0]
            if head.id is not None:
                if head.id not in acked:
                    break
                acked.discard(head.id)
                self.next_id = head.id + 1
            inflight.popleft()
            if head.segment != self.segment:
                self.segment, self.events_before = head.segment, 0
            self.offset = head.end
            self.events_before += head.records
            committed += head.records
        return committed

    def move_to(self, segment: int) -> None:
        """The committed segment is used up: continue at the start of `segment`."""
        self.segment, self.offset, self.events_before = segment, 0, 0

    def forget_acks_from(self, unit_id: int) -> None:
        """Acknowledgements of `unit_id` and later no longer name the frames they did (see `SegmentStore._skip`)."""
        self.acked = {i for i in self.acked if i < unit_id}

    def forget_inflight(self) -> None:
        """For a rewind: entries are re-created as the units are handed out again."""
        self.inflight.clear()
        self.acked = {i for i in self.acked if i >= self.next_id}
