from __future__ import annotations

from pathlib import Path

import pytest

from collector.buffer.ledger import (
    LEDGER_FILE,
    CommitTracker,
    InFlight,
    LedgerError,
    LedgerState,
    read_ledger,
    write_ledger,
)


def entry(unit_id: int | None, end: int, records: int = 1, segment: int = 1) -> InFlight:
    return InFlight(unit_id, segment, end, records, 0)


def test_commit_advances_over_the_longest_acknowledged_prefix() -> None:
    t = CommitTracker(1, 0, 0, next_id=1)
    for i in range(1, 5):
        t.add(entry(i, i * 10))
    assert t.ack(2) == 0 and t.ack(4) == 0
    assert (t.segment, t.offset) == (1, 0)
    assert t.ack(1) == 2  # 1 and 2
    assert (t.offset, t.next_id, t.events_before) == (20, 3, 2)
    assert t.ack(3) == 2
    assert (t.offset, t.next_id) == (40, 5)
    assert t.ack(1) == 0  # twice: ignored


def test_skipped_regions_are_committed_with_their_neighbours() -> None:
    t = CommitTracker(1, 0, 0, next_id=1)
    assert t.add(entry(None, 5, records=0)) == 0  # damaged region at the head: committed at once
    assert t.offset == 5
    t.add(entry(1, 10))
    t.add(entry(None, 15, records=2))
    t.add(entry(2, 20))
    assert t.ack(1) == 3 and t.offset == 15
    assert t.ack(2) == 1 and t.offset == 20


def test_acknowledgements_survive_a_rewind() -> None:
    t = CommitTracker(1, 0, 0, next_id=1)
    t.add(entry(1, 10))
    t.add(entry(2, 20))
    t.ack(2)
    t.forget_inflight()
    t.add(entry(1, 10))
    assert t.ack(1) == 1 and t.offset == 10
    assert t.add(entry(2, 20)) == 1  # acknowledged before the rewind: committed when reached again
    assert (t.offset, t.next_id) == (20, 3)


def test_segment_change_resets_records_before_offset() -> None:
    t = CommitTracker(1, 0, 0, next_id=1)
    t.add(entry(1, 10, records=3))
    t.add(entry(2, 7, records=2, segment=2))
    t.ack(1)
    assert (t.segment, t.events_before) == (1, 3)
    t.ack(2)
    assert (t.segment, t.offset, t.events_before) == (2, 7, 2)


def test_ledger_roundtrip_and_atomic_replace(tmp_path: Path) -> None:
    assert read_ledger(tmp_path) is None
    state = LedgerState(7, 1234, 5, {7: (4096, 10), 8: (100, 1)})
    write_ledger(tmp_path, state.to_json())
    assert read_ledger(tmp_path) == state
    write_ledger(tmp_path, LedgerState(8, 0).to_json())
    assert read_ledger(tmp_path) == LedgerState(8, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == [LEDGER_FILE]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b.replace(b'"offset": 1234', b'"offset": 1235'),  # checksum catches a plausible edit
        lambda b: b"\x00" * len(b),
        lambda b: b'{"version": 1, "crc": 0, "state": {"segment": -1}}',
    ],
)
def test_damaged_ledger_is_recognised(tmp_path: Path, mangle: object) -> None:
    data = LedgerState(7, 1234).to_json()
    mangled = mangle(data)  # type: ignore[operator]
    assert mangled != data
    (tmp_path / LEDGER_FILE).write_bytes(mangled)
    with pytest.raises(LedgerError):
        read_ledger(tmp_path)
