"""Start-up of a disk buffer: what a previous run left, made consistent (blocking: run it in a thread).

Cost is bounded by one segment, whatever the backlog: only the last segment is
verified frame by frame (it is the only one a crash can leave torn); the others
are trusted as far as their size matches the ledger's figures, and otherwise
only their frame headers are read, to count records. Damage inside them is
found by the reader when it gets there.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from collector.buffer.ledger import LedgerError, LedgerState, read_ledger, remove_stale_tmp
from collector.buffer.segment import Frame, list_segments, open_reader, segment_name
from collector.log import kv
from collector.private_files import open_private, private_dir


@dataclass(slots=True)
class SegmentFigures:
    id: int
    size: int
    records: int


@dataclass(slots=True)
class Recovered:
    segments: list[SegmentFigures]  # sealed segments left by the previous run, ascending
    commit_segment: int
    commit_offset: int
    events_before: int
    pending: int  # records from the committed position to the end
    writer_id: int  # the segment this run appends to (created, empty)
    writer_fd: int
    reports: list[tuple[str, int]] = field(default_factory=list)  # for on_corrupt, called on the loop


def recover(directory: Path, log: logging.Logger) -> Recovered:
    private_dir(directory)
    remove_stale_tmp(directory)
    ids = list_segments(directory)
    reports: list[tuple[str, int]] = []

    ledger: LedgerState | None = None
    try:
        ledger = read_ledger(directory)
    except LedgerError as exc:
        log.warning(
            "disk buffer ledger is damaged; replaying from the oldest segment (duplicates, no loss)",
            extra=kv(directory=str(directory), error=str(exc)),
        )
    except OSError as exc:
        log.warning(
            "cannot read the disk buffer ledger; replaying from the oldest segment (duplicates, no loss)",
            extra=kv(directory=str(directory), error=exc.strerror),
        )
    if ledger is None and ids:
        log.info("disk buffer has no ledger; replaying from the oldest segment", extra=kv(directory=str(directory)))
    if ledger is None:
        ledger = LedgerState(ids[0] if ids else 1, 0)
        highest = max(ids, default=0)
    else:
        highest = max([ledger.segment, *ids])

    # Segments before the committed one were used up; a crash came between the ledger and their removal.
    for seg_id in [i for i in ids if i < ledger.segment]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory / segment_name(seg_id))
    ids = [i for i in ids if i >= ledger.segment]

    figures: dict[int, SegmentFigures] = {}
    last_before = last_after = 0
    repaired = None
    while ids:
        # The last non-empty segment is the one a crash can have left torn (an empty one is just removed).
        last = ids[-1]
        size, records, before = _repair_last(directory, last, ledger, log, reports)
        if size:
            figures[last] = SegmentFigures(last, size, records)
            repaired, last_before, last_after = last, before, records - before
            break
        os.unlink(directory / segment_name(last))
        ids.pop()
    for seg_id in ids:
        if seg_id not in figures:
            size = os.stat(directory / segment_name(seg_id)).st_size
            figures[seg_id] = SegmentFigures(seg_id, size, 0)  # records filled in below

    commit_segment, commit_offset, events_before = ledger.segment, ledger.offset, ledger.events_before
    if commit_segment not in figures:
        # Its segment is gone (it was empty, or everything in it was lost): continue with the next one.
        commit_segment, commit_offset, events_before = (ids[0] if ids else highest + 1), 0, 0
    elif commit_offset > figures[commit_segment].size:
        log.warning(
            "disk buffer ledger points past the end of its segment (data lost to a power failure?)",
            extra=kv(
                directory=str(directory),
                segment=segment_name(commit_segment),
                offset=commit_offset,
                size=figures[commit_segment].size,
            ),
        )
        later = [i for i in ids if i > commit_segment]
        commit_segment, commit_offset, events_before = (later[0] if later else highest + 1), 0, 0

    pending = 0
    for seg_id in ids:
        fig = figures[seg_id]
        if seg_id == repaired:
            if seg_id == commit_segment:
                events_before, pending_here = last_before, last_after
            else:
                pending_here = fig.records
        else:
            known = ledger.sealed.get(seg_id)
            if (
                known is not None
                and known[0] == fig.size
                and not (seg_id == commit_segment and events_before > known[1])
            ):
                fig.records = known[1]
                pending_here = fig.records - (events_before if seg_id == commit_segment else 0)
            else:
                before, after = _count_records(directory, seg_id, commit_offset if seg_id == commit_segment else 0)
                fig.records = before + after
                if seg_id == commit_segment:
                    events_before = before
                pending_here = after
        if seg_id >= commit_segment:
            pending += pending_here

    writer_id = highest + 1
    writer_fd = open_private(directory / segment_name(writer_id), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND)
    return Recovered(
        [figures[i] for i in ids],
        commit_segment,
        commit_offset,
        events_before,
        pending,
        writer_id,
        writer_fd,
        reports,
    )


def _repair_last(
    directory: Path, seg_id: int, ledger: LedgerState, log: logging.Logger, reports: list[tuple[str, int]]
) -> tuple[int, int, int]:
    """Verify the last segment, cut a torn or damaged tail; (size, records, records before the committed offset)."""
    path = directory / segment_name(seg_id)
    reader = open_reader(path)
    try:
        size = os.fstat(reader.fd).st_size
        valid_end = records = before = 0
        for frame in reader.scan(0, size):
            if isinstance(frame, Frame):
                valid_end = frame.end
                records += frame.count
                if seg_id == ledger.segment and frame.offset < ledger.offset:
                    before += frame.count
    finally:
        reader.close()
    if valid_end < size:
        log.warning(
            "disk buffer: cut a torn or damaged tail from the last segment",
            extra=kv(directory=str(directory), segment=segment_name(seg_id), offset=valid_end, bytes=size - valid_end),
        )
        reports.append(("torn_tail", 0))
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, valid_end)
            os.fsync(fd)
        finally:
            os.close(fd)
    return valid_end, records, before


def _count_records(directory: Path, seg_id: int, split: int) -> tuple[int, int]:
    """Records (before, from) offset `split` of a sealed segment, from frame headers only."""
    reader = open_reader(directory / segment_name(seg_id))
    try:
        size = os.fstat(reader.fd).st_size
        before = reader.header_counts(0, split)[0] if split else 0
        after = reader.header_counts(split, size)[0]
    finally:
        reader.close()
    return before, after
