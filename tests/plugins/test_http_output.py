"""The `http` output: bodies, gzip, auth, answers, against an aiohttp server and osmem-server's `_bulk`."""

from __future__ import annotations

import asyncio
import gzip
import logging
from pathlib import Path
from typing import Any

import pytest

from collector.buffer.memory import MemoryBuffer
from collector.channel import Channel
from collector.dlq import DeadLetterQueue, dead_letter_files, dlq_dir, read_dead_letters
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner
from collector.send_result import Outcome
from collector.stats import ComponentStats
from collector.testing import component_context
from collector_plugins.outputs.http.output import HttpConfig, HttpOutput
from tests.plugins.bulk_fakes import Endpoint, Seen
from tests.search_peers import SearchServer


def config(url: str, **body: Any) -> HttpConfig:
    return HttpConfig.model_validate({"type": "http", "inputs": ["x"], "url": url, **body})


RECORDS = [{"message": "a", "n": 1}, {"message": b"b", "n": 2}]


@pytest.mark.parametrize(
    ("fmt", "body", "content_type"),
    [
        ("ndjson", b'{"message":"a","n":1}\n{"message":"b","n":2}\n', "application/x-ndjson"),
        ("json_array", b'[{"message":"a","n":1},{"message":"b","n":2}]', "application/json"),
        ("text", b"a\nb\n", "text/plain; charset=utf-8"),
    ],
)
async def test_bodies_gzip_and_bearer(tmp_path: Path, fmt: str, body: bytes, content_type: str) -> None:
    endpoint = await Endpoint(lambda s: (200, {}, b"{}")).start()
    output = HttpOutput(
        config(
            endpoint.url + "/in",
            format=fmt,
            compression="gzip",
            auth={"type": "bearer", "token": "t0k"},
            headers={"X-Tenant": "a"},
        ),
        component_context("h", tmp_path),
    )
    await output.start()
    try:
        assert (await output.send(Batch(LOGS, list(RECORDS)))).outcome is Outcome.OK
        (seen,) = endpoint.seen
        assert gzip.decompress(seen.raw) == body
        assert seen.headers["Content-Type"] == content_type and seen.headers["Content-Encoding"] == "gzip"
        assert seen.headers["Authorization"] == "Bearer t0k" and seen.headers["X-Tenant"] == "a"
        assert seen.method == "POST" and seen.path == "/in"
    finally:
        await output.stop()
        await endpoint.stop()


async def test_429_and_503_are_retried_with_retry_after_and_4xx_dead_lettered(tmp_path: Path) -> None:
    answers = iter([(429, {"Retry-After": "0"}), (503, {"Retry-After": "0"}), (200, {}), (400, {})])

    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        status, headers = next(answers)
        return status, headers, b'{"error":"bad record"}' if status == 400 else b"{}"

    endpoint = await Endpoint(answer).start()
    cfg = config(endpoint.url, batch={"max_events": 2}, retry={"initial_backoff": "1ms", "max_backoff": "2ms"})
    output = HttpOutput(cfg, component_context("h", tmp_path))
    buffer = MemoryBuffer(max_events=100, max_bytes=10**6, when_full="block", on_drop=lambda r, n: None)
    stats = ComponentStats("h", "outputs", "http")
    dlq = DeadLetterQueue(dlq_dir(tmp_path, "h"), "h", 10**6)
    runner = OutputRunner("h", Channel("h"), buffer, dlq, stats, logging.getLogger("t"), RepeatLimiter(60))
    await buffer.push(Batch(LOGS, [{"message": "one"}, {"message": "two"}]))
    await buffer.push(Batch(LOGS, [{"message": "three"}, {"message": "four"}]))
    buffer.close_intake()
    await output.start()
    try:
        await asyncio.wait_for(runner.deliver(output, cfg, asyncio.Event()), timeout=20)
    finally:
        await output.stop()
        await endpoint.stop()
        dlq.close()
    bodies = [s.body for s in endpoint.seen]
    assert bodies[0] == bodies[1] == bodies[2]  # the same batch until accepted
    assert stats.sent_events == 2 and stats.retries == 2
    dead = [e for f in dead_letter_files(tmp_path, "h") for e in read_dead_letters(f)]
    assert [e["record"]["message"] for e in dead] == ["three", "four"]
    assert "HTTP 400" in dead[0]["reason"] and "bad record" in dead[0]["reason"]
    assert output.counters() == {"requests": 4, "rejected_requests": 1}


async def test_osmem_bulk_as_a_generic_ndjson_endpoint(tmp_path: Path, osmem: SearchServer) -> None:
    # Records that carry `_bulk` lines as their message, sent as text: the endpoint sees exactly those lines,
    # each ending with a newline, the last included (osmem refuses a body without it).
    action = '{{"create":{{"_index":"http-generic","_id":"{0}"}}}}\n{{"n":{0}}}'
    records = [{"message": action.format(i)} for i in range(5)]
    output = HttpOutput(
        config(osmem.url + "/_bulk", format="text", content_type="application/x-ndjson", compression="gzip"),
        component_context("h", tmp_path),
    )
    await output.start()
    try:
        assert (await output.send(Batch(LOGS, records))).outcome is Outcome.OK
        bad = await output.send(Batch(LOGS, [{"message": "not an action"}]))
        assert bad.outcome is Outcome.DROP and "HTTP 400" in bad.reason
    finally:
        await output.stop()
    docs = osmem.documents("http-generic")
    assert sorted(d["_source"]["n"] for d in docs) == [0, 1, 2, 3, 4]
    osmem.delete("http-generic")
