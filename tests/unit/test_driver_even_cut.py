"""The driver cuts units with estimated sizes by arithmetic: the same requests as placing records one by one.

`_Batcher._cut_evenly` replaces a per-record loop (issue 16); this checks it against
that loop, written out here as the reference, over random limits and units.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.buffer.base import Unit
from collector.events import LOGS, METRICS, Batch
from collector.output_driver import EffectiveLimits, _Batcher

Request = tuple[str, str | None, list[Any], int, list[str]]


def reference(units: list[Unit], limits: EffectiveLimits) -> tuple[list[Request], list[str]]:
    """Each record sized `nbytes // len(records)`, placed one at a time (the loop the driver had)."""
    done: list[Request] = []
    acked: list[str] = []
    open_: Request | None = None
    for unit in units:
        batch = unit.batch
        records = batch.records
        if open_ is not None and open_[0] != batch.kind:
            done.append(open_)
            open_ = None
        if not records:
            acked.append(unit.origin)
            continue
        whole = len(records) <= limits.max_events and batch.nbytes <= limits.max_bytes
        if whole:
            if open_ is not None and (
                len(open_[2]) + len(records) > limits.max_events or open_[3] + batch.nbytes > limits.max_bytes
            ):
                done.append(open_)
                open_ = None
            if open_ is None:
                open_ = (batch.kind, unit.origin, [], 0, [])
            open_ = (open_[0], open_[1], open_[2] + records, open_[3] + batch.nbytes, [*open_[4], unit.origin])
            continue
        size = batch.nbytes // len(records)
        for index, record in enumerate(records):
            if open_ is not None and (len(open_[2]) >= limits.max_events or open_[3] + size > limits.max_bytes):
                done.append(open_)
                open_ = None
            if open_ is None:
                open_ = (batch.kind, unit.origin if index == 0 else f"{unit.origin}-{index}", [], 0, [])
            owners = open_[4] if open_[4] and open_[4][-1] == unit.origin else [*open_[4], unit.origin]
            open_ = (open_[0], open_[1], [*open_[2], record], open_[3] + size, owners)
    if open_ is not None:
        done.append(open_)
    return done, acked


def batcher_run(units: list[Unit], limits: EffectiveLimits) -> tuple[list[Request], list[str]]:
    acked: list[str] = []

    def dead_letter(*args: Any) -> None:
        raise AssertionError(f"nothing is dead-lettered without a per-record limit: {args}")

    async def go() -> list[Request]:
        batcher = _Batcher(limits, None, lambda unit: acked.append(unit.origin), dead_letter)  # type: ignore[arg-type]
        requests = []
        for unit in units:
            requests.extend(batcher.add(unit))
        last = batcher.take()
        if last is not None:
            requests.append(last)
        return [(r.kind, r.origin, r.records, r.nbytes, [o.unit.origin for o in r.owners]) for r in requests]

    return asyncio.run(go()), acked


units_strategy = st.lists(
    st.tuples(
        st.sampled_from([LOGS, LOGS, LOGS, METRICS]),
        st.integers(0, 60),
        st.sampled_from([0, 0, 1, 7, 50, 220, 400, 5000]),  # bytes per record, on average (0: tiny records)
        st.integers(0, 7),  # remainder: nbytes need not divide evenly
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=500, deadline=None)
@given(
    max_events=st.integers(1, 25),
    max_bytes=st.sampled_from([1, 100, 219, 220, 221, 1000, 3000]),
    shapes=units_strategy,
)
def test_even_cut_matches_placing_records_one_by_one(
    max_events: int, max_bytes: int, shapes: list[tuple[str, int, int, int]]
) -> None:
    limits = EffectiveLimits(max_events, max_bytes, None, 1.0, exact_sizes=False)
    units = []
    for n, (kind, count, per, extra) in enumerate(shapes):
        records = [f"u{n}r{i}" for i in range(count)]
        units.append(Unit(n, Batch(kind, records, count * per + extra), f"u{n}"))  # type: ignore[arg-type]
    assert batcher_run(units, limits) == reference(units, limits)


def test_a_read_of_thousands_of_lines_is_cut_at_the_event_limit() -> None:
    limits = EffectiveLimits(2000, 10 * 1024 * 1024, None, 1.0, exact_sizes=False)
    unit = Unit(0, Batch(LOGS, list(range(4800)), 4800 * 220), "u0")
    requests, acked = batcher_run([unit], limits)
    assert [(origin, len(records), nbytes) for _, origin, records, nbytes, _ in requests] == [
        ("u0", 2000, 2000 * 220),
        ("u0-2000", 2000, 2000 * 220),
        ("u0-4000", 800, 800 * 220),
    ]
    assert acked == []
