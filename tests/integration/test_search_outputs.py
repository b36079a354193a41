"""opensearch and elasticsearch outputs through the real driver into the real peers.

- osmem-server (OpenSearch API: faithful per-item 201/409/400) and noida-db's
  Elasticsearch API, started once per session (tests/conftest.py);
- a replay of the same disk buffer (a copy of its directory taken before
  delivery: what a crash between the send and the acknowledgement leaves)
  writes no second copy: every document once, by `_id`;
- a seeded fault proxy answering 429/500 per item and per request, and losing
  answers of items it did forward, on every call: every good document ends up
  in the index exactly once and every bad one (a mapping error) is a dead letter
  with the cluster's reason.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from collector.api import Output
from collector.channel import Channel
from collector.dlq import DeadLetterQueue, dead_letter_files, dlq_dir, read_dead_letters
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner
from collector.stats import ComponentStats
from collector.testing import component_context
from collector_plugins.outputs.elasticsearch.output import ElasticsearchOutput
from collector_plugins.outputs.opensearch.output import OpenSearchOutput
from tests.plugins.bulk_fakes import FaultProxy
from tests.search_peers import SearchServer
from tests.unit.buffer.helpers import make_buffer

PEERS = [("osmem", OpenSearchOutput), ("noida_es", ElasticsearchOutput)]


def records(first: int, n: int) -> Batch:
    recs = [{"message": f"line {i}", "seq": i, "timestamp": 1796515200.0 + i} for i in range(first, first + n)]
    return Batch(LOGS, recs, nbytes=10 * n)


async def fill(directory: Path, batches: list[Batch]) -> None:
    buffer = make_buffer(directory, segment_bytes=64 * 1024, max_bytes=64 << 20)
    await buffer.open()
    for batch in batches:
        await buffer.push(batch)
    await buffer.close()


async def deliver(directory: Path, tmp_path: Path, cls: type[Output], body: dict[str, Any]) -> tuple[Any, Any]:
    """Everything in the disk buffer at `directory` through the driver; (output, stats)."""
    buffer = make_buffer(directory, segment_bytes=64 * 1024, max_bytes=64 << 20)
    await buffer.open()
    config = cls.Config.model_validate({"type": cls.type_name, "inputs": ["x"], **body})
    output = cls(config, component_context("search", tmp_path))
    stats = ComponentStats("search", "outputs", cls.type_name)
    dlq = DeadLetterQueue(dlq_dir(tmp_path, "search"), "search", 10**8)
    runner = OutputRunner("search", Channel("search"), buffer, dlq, stats, logging.getLogger("t"), RepeatLimiter(60))
    await output.start()
    try:
        buffer.close_intake()
        await asyncio.wait_for(runner.deliver(output, config, asyncio.Event()), timeout=60)
    finally:
        await output.stop()
        dlq.close()
        await buffer.close()
    return output, stats


@pytest.mark.parametrize(("peer", "cls"), PEERS)
async def test_a_replayed_buffer_writes_no_second_copy(
    peer: str, cls: type[Output], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server: SearchServer = request.getfixturevalue(peer)
    index = f"replay-{uuid.uuid4().hex[:8]}"
    await fill(tmp_path / "buf", [records(i * 100, 100) for i in range(10)])
    shutil.copytree(tmp_path / "buf", tmp_path / "crashed")  # as a crash before the acknowledgements leaves it
    body = {"endpoint": server.url, "index": index, "compression": "gzip", "batch": {"max_bytes": 20_000}}
    _, stats = await deliver(tmp_path / "buf", tmp_path, cls, body)
    assert stats.sent_events == 1000
    again, stats = await deliver(tmp_path / "crashed", tmp_path, cls, {**body, "batch": {"max_bytes": 7_000}})
    assert stats.sent_events == 1000  # accepted as delivered ...
    assert again.counters()["items_already_present"] == 1000  # ... because each was already there
    docs = server.documents(index)
    assert len(docs) == 1000 and len({d["_id"] for d in docs}) == 1000
    assert sorted(d["_source"]["seq"] for d in docs) == list(range(1000))
    assert all(d["_source"]["@timestamp"].startswith("2026-12-0") for d in docs)
    server.delete(index)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1])
@pytest.mark.parametrize(("peer", "cls"), PEERS)
async def test_faults_on_every_call_deliver_each_good_document_once(
    peer: str, cls: type[Output], seed: int, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server: SearchServer = request.getfixturevalue(peer)
    index = f"faults-{uuid.uuid4().hex[:8]}"
    total = 400
    batches = [records(i * 20, 20) for i in range(total // 20)]
    bad = set(range(7, total, 37))
    for batch in batches:
        for record in batch.records:
            if record["seq"] in bad:
                record["seq"] = {"not": "a number"}  # a mapping error: `seq` is a long in this index
                record["bad"] = True
    # `seq` becomes a long with the first document (not a bad one): the bad ones are rejected with 400.
    await fill(tmp_path / "buf", batches)
    proxy = await FaultProxy(server.url, seed).start()
    try:
        body = {
            "endpoint": proxy.url,
            "index": index,
            "batch": {"max_bytes": 40_000},
            "retry": {"initial_backoff": "1ms", "max_backoff": "5ms"},
            "concurrency": 4,
        }
        _, stats = await deliver(tmp_path / "buf", tmp_path, cls, body)
    finally:
        await proxy.stop()
    counts = proxy.counts
    assert counts.whole and counts.item_failed and counts.answer_lost  # every kind of fault happened
    docs = server.documents(index)
    assert len(docs) == total - len(bad)
    assert len({d["_id"] for d in docs}) == len(docs)  # no document twice
    assert sorted(d["_source"]["seq"] for d in docs) == sorted(set(range(total)) - bad)
    dead = [e for f in dead_letter_files(tmp_path, "search") for e in read_dead_letters(f)]
    assert len(dead) == len(bad) and all(e["record"]["bad"] for e in dead)
    assert all("400" in e["reason"] and "pars" in e["reason"] for e in dead)
    assert stats.sent_events == total - len(bad)
    server.delete(index)
