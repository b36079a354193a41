"""The installed CLI: file input -> opensearch output (disk buffer) -> osmem-server, killed -9 mid-stream.

The log file is read into the disk buffer while the cluster is unreachable,
until the file input's checkpoint covers the whole file; then the collector is
killed with SIGKILL at random moments while it delivers to osmem-server, and
restarted. Each restart replays what the buffer had not acknowledged, with the
same `_id`s (osmem answers 409, counted as delivered): every line ends up in the
index exactly once.

What this does not cover, by design: lines the file input reads *again* after a
kill (its checkpoint trails what it has read by up to a second) are new buffer
data with new ids, so they are indexed twice. Ids follow the buffer position,
not the source position (see plugins/outputs/opensearch/README.md).
"""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from collector.testing import free_port, wait_for_sync
from tests.e2e.conftest import Collector
from tests.search_peers import SearchServer


def config(logs: Path, endpoint: str, index: str) -> str:
    return f"""\
inputs:
  app:
    type: file
    include: ["{logs}/*.log"]
outputs:
  search:
    type: opensearch
    inputs: [app]
    endpoint: {endpoint}
    index: {index}
    compression: gzip
    concurrency: 2
    batch: {{max_bytes: 100KiB, timeout: 100ms}}
    buffer: {{type: disk, max_bytes: 64MiB, fsync: interval, fsync_interval: 200ms}}
    retry: {{initial_backoff: 50ms, max_backoff: 200ms}}
"""


def checkpointed(collector: Collector) -> int:
    path = collector.workdir / "data" / "components" / "app" / "files.json"
    try:
        return sum(int(f["offset"]) for f in json.loads(path.read_text())["files"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_mid_delivery_leaves_every_line_in_opensearch_exactly_once(
    collector: Collector, osmem: SearchServer
) -> None:
    total = 8_000
    index = f"e2e-{uuid.uuid4().hex[:8]}"
    logs = collector.workdir / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("".join(f"line {i:06d} {'x' * 200}\n" for i in range(total)))
    size = (logs / "app.log").stat().st_size
    # 1. Read everything into the disk buffer while the cluster is away (nothing listens on that port).
    collector.write_config(config(logs, f"http://127.0.0.1:{free_port()}", index))
    collector.start()
    wait_for_sync(lambda: checkpointed(collector) == size, timeout=30)
    collector.signal(signal.SIGKILL)
    collector.wait()
    # 2. Deliver to osmem-server, killed at random moments.
    collector.write_config(config(logs, osmem.url, index))
    seed = random.randrange(2**32)
    rnd = random.Random(seed)

    def count() -> int:
        status, answer = osmem.call("GET", f"/{index}/_count")
        return int(answer["count"]) if status == 200 else 0

    kills = 0
    while kills < 5 and count() < total:
        collector.start()
        time.sleep(rnd.uniform(0.05, 0.4))  # not a wait: a random moment to kill at
        collector.signal(signal.SIGKILL)
        collector.wait()
        kills += 1
    collector.start()
    wait_for_sync(lambda: count() >= total, timeout=60, interval=0.2)
    collector.signal(signal.SIGTERM)
    assert collector.wait(timeout=30) == 0, collector.stderr()
    docs = osmem.documents(index)
    lines = Counter(d["_source"]["message"][:11] for d in docs)
    duplicates = {line: n for line, n in lines.items() if n > 1}
    print(f"seed={seed} kills={kills} documents={len(docs)} duplicates={len(duplicates)}")
    assert kills >= 1
    assert set(lines) == {f"line {i:06d}" for i in range(total)}
    assert not duplicates, f"seed={seed}: {sorted(duplicates.items())[:10]}"
    assert len(docs) == total
    osmem.delete(index)
