"""kill -9 mid-stream with the fleet outputs, the installed CLI on both sides: nothing lost.

- agent -> Kafka (noida-db): the agent (generator with a checkpoint, disk buffer) is killed at random moments;
  the topic, read back with a consumer group, holds every sequence number.
- agent -> aggregator (our `forward` output into our `forward` input, both `collector run`): the aggregator
  is killed mid-stream and restarted, then the agent; the aggregator's file holds every sequence number.
Duplicates are allowed (at least once) and printed.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from collector.testing import free_port
from tests.e2e.conftest import Collector, json_lines
from tests.kafka_broker import KafkaBroker

GENERATOR = """\
inputs:
  seq:
    type: generator
    rate: {rate}
    batch_size: 200
    checkpoint: true
    count: {count}
"""


def kill_at_random_moments(collector: Collector, kills: int, rnd: random.Random) -> int:
    done = 0
    while done < kills:
        collector.start()
        time.sleep(rnd.uniform(0.2, 0.8))  # not a wait: a random moment to kill at
        if collector.proc is None or collector.proc.poll() is not None:
            break
        collector.signal(signal.SIGKILL)
        collector.wait()
        done += 1
    return done


@pytest.mark.slow
def test_agent_killed_while_sending_to_kafka_loses_nothing(tmp_path: Path, kafka_broker: KafkaBroker) -> None:
    total = 12_000
    agent = Collector(tmp_path)
    agent.write_config(
        GENERATOR.format(rate=6000, count=total)
        + f"""\
outputs:
  kafka:
    type: kafka
    inputs: [seq]
    bootstrap_servers: ["{kafka_broker.bootstrap}"]
    topic: fleet
    compression: zstd
    buffer: {{type: disk, max_bytes: 64MiB}}
    retry: {{initial_backoff: 50ms, max_backoff: 500ms}}
"""
    )
    seed = random.randrange(2**32)
    try:
        kills = kill_at_random_moments(agent, 4, random.Random(seed))
        agent.start(wait_ready=False)
        assert agent.wait(timeout=60) == 0, agent.stderr()  # every record acknowledged: drained, exit 0
    finally:
        agent.stop()
    messages = asyncio.run(kafka_broker.read("fleet", total, timeout=30))
    counts = Counter(json.loads(m.value)["sequence"] for m in messages)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"seed={seed} kills={kills} read={len(messages)} duplicates={duplicates}")
    assert kills == 4
    assert set(counts) == set(range(total)), f"missing: {sorted(set(range(total)) - set(counts))[:20]}"


@pytest.mark.slow
def test_aggregator_and_agent_killed_mid_stream_lose_nothing(tmp_path: Path) -> None:
    total = 20_000
    port = free_port()
    (tmp_path / "agg").mkdir()
    (tmp_path / "agent").mkdir()
    out = tmp_path / "agg" / "received.jsonl"
    aggregator = Collector(tmp_path / "agg")
    aggregator.write_config(
        f"""\
inputs:
  agents: {{type: forward, listen: "tcp://127.0.0.1:{port}", shared_key: fleet-key}}
outputs:
  store:
    type: file
    inputs: [agents]
    path: {out}
    max_bytes: null
    buffer: {{type: disk, max_bytes: 64MiB}}
"""
    )
    agent = Collector(tmp_path / "agent")
    agent.write_config(
        GENERATOR.format(rate=4000, count=total)
        + f"""\
outputs:
  aggregator:
    type: forward
    inputs: [seq]
    servers: ["127.0.0.1:{port}"]
    shared_key: fleet-key
    compress: gzip
    ack_timeout: 5s
    buffer: {{type: disk, max_bytes: 64MiB}}
    retry: {{initial_backoff: 50ms, max_backoff: 500ms}}
"""
    )
    rnd = random.Random(random.randrange(2**32))
    try:
        aggregator.start()
        agent.start()
        agent_kills = 0
        time.sleep(rnd.uniform(0.3, 0.8))  # not a wait: the agent dies mid-stream
        if agent.proc is not None and agent.proc.poll() is None:
            agent.signal(signal.SIGKILL)
            agent.wait()
            agent_kills = 1
        agent.start()
        for _ in range(2):  # then the aggregator dies mid-stream, twice, and comes back
            time.sleep(rnd.uniform(0.3, 0.8))  # not a wait: a random moment to kill at
            aggregator.signal(signal.SIGKILL)
            aggregator.wait()
            aggregator.start()
        assert agent.proc is not None and agent.proc.poll() is None  # still sending when the aggregator died
        assert agent.wait(timeout=90) == 0, agent.stderr()  # every chunk acknowledged: drained, exit 0
        aggregator.signal(signal.SIGTERM)  # the aggregator drains its disk buffer into the file
        assert aggregator.wait(timeout=30) == 0, aggregator.stderr()
    finally:
        agent.stop()
        aggregator.stop()
    lines = json_lines(out, torn_at_most=2)  # a line the aggregator's kills cut short stays a line of its own
    counts = Counter(r["sequence"] for r in lines)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"aggregator kills=2 agent kills={agent_kills} received={len(lines)} duplicates={duplicates}")
    assert agent_kills == 1
    assert set(counts) == set(range(total)), f"missing: {sorted(set(range(total)) - set(counts))[:20]}"
