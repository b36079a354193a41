"""The installed collector's `otlp` output: kill -9 at random moments and a receiver outage lose nothing.

A generator's numbered records go through the `otlp` output (disk buffer) to a test OTLP receiver in this
process (tests/plugins/otlp_receiver.py) that refuses every request while it is "down" (HTTP 503 / gRPC
UNAVAILABLE: retryable per the OTLP spec). The sending collector is killed with SIGKILL several times; at the
end every sequence number must have been accepted by the receiver (duplicates allowed: at-least-once).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter

import grpc
import pytest

from tests.e2e.conftest import Collector
from tests.plugins.otlp_receiver import OK, Reply, ThreadedReceiver, items


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sigkill_and_outage_lose_nothing(collector: Collector, protocol: str) -> None:
    down = threading.Event()
    down.set()  # starts with an outage: the disk buffer holds everything

    def plan(signal_: str, call: int, request: object) -> Reply:
        return Reply(http_status=503, grpc_code=grpc.StatusCode.UNAVAILABLE) if down.is_set() else OK

    receiver = ThreadedReceiver(plan)
    endpoint = receiver.start(protocol)
    total = 12_000
    collector.write_config(f"""\
inputs:
  seq:
    type: generator
    rate: 6000
    batch_size: 300
    checkpoint: true
    count: {total}
outputs:
  dest:
    type: otlp
    inputs: [seq]
    protocol: {protocol}
    endpoint: {endpoint}
    buffer: {{type: disk, max_bytes: 64MiB, fsync: interval, fsync_interval: 200ms}}
    retry: {{initial_backoff: 50ms, max_backoff: 200ms}}
""")
    rnd = random.Random(17)
    try:
        kills = 0
        while kills < 5:
            collector.start()
            if kills == 2:
                down.clear()  # the receiver comes back while records are still being generated
            time.sleep(rnd.uniform(0.2, 0.8))  # not a wait: a random moment to kill at
            if collector.proc is not None and collector.proc.poll() is None:
                collector.signal(signal.SIGKILL)
                collector.wait()
                kills += 1
            else:
                break
        down.clear()
        collector.start(wait_ready=False)
        assert collector.wait(timeout=90) == 0, collector.stderr()  # every input finished: drained, exit 0
    finally:
        receiver.stop()
    got = Counter(
        next(kv.value.int_value for kv in record.attributes if kv.key == "sequence")
        for request in receiver.receiver.requests["logs"]
        for record in items("logs", request)
    )
    assert kills == 5
    assert set(got) == set(range(total)), f"missing: {sorted(set(range(total)) - set(got))[:20]}"
    assert receiver.receiver.calls > len(receiver.receiver.requests["logs"])  # the outage was seen
