"""A disk buffer's log tells the size of a previous run's backlog, its drain (rate-limited) and its end."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from collector.buffer.backlog import BacklogReport
from collector.buffer.recovery import Recovered, SegmentFigures
from collector.log import kv
from collector.testing import wait_for
from tests.unit.buffer.helpers import LOG, log_batch, make_buffer


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[dict]:
    return [r.fields for r in caplog.records if r.getMessage().startswith(text)]  # type: ignore[attr-defined]


def test_progress_is_logged_at_most_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOG.name)
    now = [0.0]
    rec = Recovered(
        segments=[SegmentFigures(1, 1000, 10), SegmentFigures(2, 1000, 10)],
        commit_segment=1,
        commit_offset=200,  # the previous run had delivered the first 200 bytes
        events_before=0,
        pending=18,
        writer_id=3,
        writer_fd=-1,
    )
    report = BacklogReport(rec, 18, LOG, kv, interval=10, clock=lambda: now[0])
    assert lines(caplog, "disk buffer resumed with a backlog") == [{"segments": 2, "bytes": 1800, "events": 18}]
    for t, position in [(1, (1, 500)), (9, (1, 900)), (10, (2, 0)), (15, (2, 100)), (21, (2, 500))]:
        now[0] = t
        report.check(position, 5)
    progress = lines(caplog, "disk buffer draining backlog")
    # t=10 and t=21 only: never two within 10 s.
    assert [(p["done_bytes"], p["percent"], p["seconds"]) for p in progress] == [(800, 44.4, 10), (1300, 72.2, 21)]
    now[0] = 22
    report.check((3, 0), 0)  # the commit moved into this run's segment: all of it delivered
    assert report.finished
    assert lines(caplog, "disk buffer backlog drained") == [{"events": 18, "bytes": 1800, "seconds": 22}]
    report.check((3, 100), 0)
    assert len(lines(caplog, "disk buffer backlog drained")) == 1


async def test_a_reopened_buffer_logs_its_backlog_draining_and_drained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, LOG.name)
    buf = make_buffer(tmp_path)
    await buf.open()
    for i in range(100):
        await buf.push(log_batch(i, size=100))
    await buf.close()

    buf = make_buffer(tmp_path, fsync_interval=0.01)
    buf.backlog_log_interval = 0.0  # a progress line at every check
    await buf.open()
    assert lines(caplog, "disk buffer resumed with a backlog")[0]["events"] == 100
    await buf.push(log_batch(1000, size=100))  # new data: not part of the backlog
    for _ in range(50):
        unit = await buf.pop()
        assert unit is not None
        buf.ack(unit)
    await wait_for(lambda: bool(lines(caplog, "disk buffer draining backlog")), timeout=5)
    assert not lines(caplog, "disk buffer backlog drained")
    assert 0 < lines(caplog, "disk buffer draining backlog")[-1]["percent"] < 100
    for _ in range(50):
        unit = await buf.pop()
        assert unit is not None
        buf.ack(unit)
    await wait_for(lambda: bool(lines(caplog, "disk buffer backlog drained")), timeout=5)
    assert lines(caplog, "disk buffer backlog drained")[0]["events"] == 100
    assert buf.pending_events == 1  # the new batch, still there: the backlog ended before it
    await buf.close()
