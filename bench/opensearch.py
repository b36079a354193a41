"""Records/s through the `opensearch` output and the real driver, into osmem-server and a minimal `_bulk`.

    python -m bench.opensearch                   # 200k records to each peer, 1 core for the collector side
    python -m bench.opensearch --records 500000 --gzip --concurrency 4

The collector side (a memory buffer fed with batches of 1,000 200-byte log
records, the output driver, `_bulk` encoding with stable ids and @timestamp, the
HTTP client) runs in this process, pinned to CPU 0; the peer runs as its own
process pinned to CPU 1:

- `osmem`: osmem-server, a real OpenSearch API (indexes every document);
- `noida`: noida-db's Elasticsearch API (indexes every document), through the
  `elasticsearch` output;
- `fast`: a minimal `_bulk` responder (aiohttp) that reads the body and answers
  `errors: false`, so the figure is the collector side's own ceiling.

Prints records/s, MiB/s of messages, the CPU this process used per second of
wall time (1.0 = one core busy), records per CPU-second of this process (what
one fully busy core would do: the figure to read on a shared, loaded machine)
and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.s3 import MESSAGE_BYTES, log_lines
from collector.buffer.memory import MemoryBuffer
from collector.channel import Channel
from collector.dlq import DeadLetterQueue, dlq_dir
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner
from collector.stats import ComponentStats
from collector.testing import component_context, free_port
from collector_plugins.outputs.elasticsearch.output import ElasticsearchConfig, ElasticsearchOutput
from collector_plugins.outputs.opensearch.output import OpenSearchConfig, OpenSearchOutput
from tests.search_peers import SearchServer

MIB = 1024 * 1024

FAST_BULK = """
import sys
from aiohttp import web
OK = b'{"errors":false,"items":[]}'
async def bulk(request):
    await request.read()
    return web.Response(body=OK, content_type="application/json")
async def root(request):
    return web.json_response({"version": {"number": "fast"}})
app = web.Application(client_max_size=200 * 1024 * 1024)
app.router.add_post("/_bulk", bulk)
app.router.add_get("/", root)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def start_fast() -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", FAST_BULK, str(port)])
    import urllib.request

    from collector.testing import wait_for_sync

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return True
        except OSError:
            return False

    wait_for_sync(up, timeout=20, interval=0.05)
    return f"http://127.0.0.1:{port}", process


async def run(endpoint: str, records: int, gzip: bool, concurrency: int, kind: str = "opensearch") -> dict[str, float]:
    texts = log_lines(2000)
    now = time.time()
    batches = [
        Batch(
            LOGS,
            [
                {"timestamp": now + i * 0.001, "message": texts[(b + i) % 2000], "host": "ip-10-0-0-1"}
                for i in range(1000)
            ],
            nbytes=1000 * MESSAGE_BYTES,
        )
        for b in range(records // 1000)
    ]
    body = {
        "type": kind,
        "inputs": ["x"],
        "endpoint": endpoint,
        "index": "bench-{%Y.%m.%d}",
        "compression": "gzip" if gzip else "none",
        "concurrency": concurrency,
        "batch": {"max_bytes": "5MiB", "timeout": "0s"},
    }
    config_type, output_type = (
        (OpenSearchConfig, OpenSearchOutput) if kind == "opensearch" else (ElasticsearchConfig, ElasticsearchOutput)
    )
    config = config_type.model_validate(body)
    with tempfile.TemporaryDirectory() as tmp:
        output = output_type(config, component_context("bench", Path(tmp)))
        buffer = MemoryBuffer(max_events=10**8, max_bytes=10**11, when_full="block", on_drop=lambda r, n: None)
        stats = ComponentStats("bench", "outputs", "opensearch")
        dlq = DeadLetterQueue(dlq_dir(Path(tmp), "bench"), "bench", 10**8)
        runner = OutputRunner("bench", Channel("b"), buffer, dlq, stats, logging.getLogger("bench"), RepeatLimiter(60))
        for batch in batches:
            await buffer.push(batch)
        buffer.close_intake()
        await output.start()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await runner.deliver(output, config, asyncio.Event())
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        await output.stop()
        dlq.close()
    assert stats.sent_events == len(batches) * 1000, stats.sent_events
    sent = stats.sent_events
    return {"records_s": sent / wall, "mib_s": sent * MESSAGE_BYTES / MIB / wall, "cpu": cpu / wall, "wall": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--peers", default="fast,osmem,noida")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    ncpu = os.cpu_count() or 1
    for peer in args.peers.split(","):
        if peer in ("osmem", "noida"):
            server = SearchServer.osmem() if peer == "osmem" else SearchServer.noida()
            endpoint, process, stop = server.url, server.process, server.stop
            # The log lines start with an ISO time, which noida-db's dynamic mapping takes for a date field
            # (Elasticsearch only does so for a whole-value match): map `message` as text up front.
            index = time.strftime("bench-%Y.%m.%d", time.gmtime())
            server.call("PUT", f"/{index}", {"mappings": {"properties": {"message": {"type": "text"}}}})
        else:
            endpoint, process = start_fast()
            stop = process.terminate
        if ncpu > 1:
            os.sched_setaffinity(process.pid, {1})
            os.sched_setaffinity(0, {0})
        try:
            kind = "elasticsearch" if peer == "noida" else "opensearch"
            figures = asyncio.run(run(endpoint, args.records, args.gzip, args.concurrency, kind))
        finally:
            stop()
            process.wait()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{peer:6s} records={args.records} gzip={args.gzip} concurrency={args.concurrency}: "
            f"{figures['records_s']:,.0f} records/s  {figures['mib_s']:.1f} MiB/s  "
            f"cpu {figures['cpu']:.2f} cores ({figures['records_s'] / max(figures['cpu'], 1e-9):,.0f} records per "
            f"CPU-second)  peak RSS {rss:.0f} MiB"
        )


if __name__ == "__main__":
    main()
