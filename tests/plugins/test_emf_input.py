"""The `emf` input with the real aws-embedded-metrics library over TCP and UDP."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.api import HostFacts, InputContext
from collector.events import LOGS, METRICS, Batch
from collector.testing import wait_for
from collector_plugins.common.metrics.distribution import as_distribution
from collector_plugins.inputs.emf.input import EmfConfig, EmfInput

# A process using the library as an application would. `Default` selects the agent sink (the endpoint
# below) without probing instance metadata; `Local` would print to stdout and never reach an agent.
APP = textwrap.dedent(
    """
    import sys
    from aws_embedded_metrics.logger.metrics_logger_factory import create_metrics_logger
    from aws_embedded_metrics.storage_resolution import StorageResolution

    requests = int(sys.argv[1])
    for i in range(requests):
        metrics = create_metrics_logger()
        metrics.set_namespace("CollectorTest")
        metrics.put_dimensions({"Service": "checkout"})
        metrics.put_metric("Latency", float(i % 10), "Milliseconds")
        metrics.put_metric("Orders", 1, "Count", StorageResolution.HIGH)
        metrics.set_property("RequestId", "r%d" % i)
        metrics.flush_sync()
    # More than the 100 metrics a document may hold, and one metric with 250 values: the library splits these.
    metrics = create_metrics_logger()
    metrics.set_namespace("CollectorTest")
    for j in range(150):
        metrics.put_metric("m%d" % j, j)
    for v in range(250):
        metrics.put_metric("Samples", v)
    metrics.flush_sync()
    """
)


def run_app(endpoint: str, requests: int) -> None:
    env = {
        **os.environ,
        "AWS_EMF_ENVIRONMENT": "Default",
        "AWS_EMF_AGENT_ENDPOINT": endpoint,
        "AWS_EMF_SERVICE_NAME": "shop",
        "AWS_EMF_LOG_GROUP_NAME": "/app/shop",
    }
    subprocess.run([sys.executable, "-c", APP, str(requests)], env=env, check=True, timeout=60)


class Losses(dict[str, int]):
    def __call__(self, reason: str, events: int) -> None:
        self[reason] = self.get(reason, 0) + events


class Harness:
    def __init__(self, inp: EmfInput, ctx: InputContext, batches: list[Batch], losses: Losses) -> None:
        self.inp, self.ctx, self.batches, self.losses = inp, ctx, batches, losses
        self.task: asyncio.Task[None] | None = None

    def records(self, kind: str = LOGS) -> list[Any]:
        return [r for b in self.batches if b.kind == kind for r in b.records]

    async def stop(self) -> None:
        self.ctx.stopping.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)
        await self.inp.stop()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[Harness] = []

    async def make(**options: Any) -> Harness:
        config = EmfConfig.model_validate(
            {"type": "emf", "listen": ["tcp://127.0.0.1:0", "udp://127.0.0.1:0"], **options}
        )
        batches: list[Batch] = []
        losses = Losses()

        async def emit(batch: Batch) -> None:
            batches.append(batch)

        def try_emit(batch: Batch) -> bool:
            batches.append(batch)
            return True

        ctx = InputContext(
            "emf",
            logging.getLogger("test.emf"),
            tmp_path,
            HostFacts("h"),
            emit,
            asyncio.Event(),
            loss=losses,
            try_emit=try_emit,
        )
        inp = EmfInput(config, ctx)
        await inp.start()
        h = Harness(inp, ctx, batches, losses)
        h.task = asyncio.create_task(inp.run(ctx))
        made.append(h)
        return h

    yield make
    for h in made:
        if h.task is not None and not h.task.done():
            await h.stop()


def check_library_output(records: list[dict[str, Any]], requests: int) -> None:
    emf = [r for r in records if r.get("_emf")]
    assert len(emf) == len(records)
    docs = [orjson.loads(r["message"]) for r in emf]
    per_request = [d for d in docs if "RequestId" in d]
    assert sorted(d["RequestId"] for d in per_request) == sorted(f"r{i}" for i in range(requests))
    for record, doc in zip(emf, docs, strict=True):
        assert record["timestamp"] == doc["_aws"]["Timestamp"] / 1000
        assert record["log_group_name"] == "/app/shop"
        assert isinstance(record["message"], str) and "\n" not in record["message"]
    first = per_request[0]
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "CollectorTest"
    assert {"Name": "Orders", "Unit": "Count", "StorageResolution": 1} in directive["Metrics"]
    # The big flush arrived as the library split it, every value once.
    big = [d for d in docs if "RequestId" not in d]
    assert sorted(v for d in big if "Samples" in d for v in d["Samples"]) == list(range(250))
    assert {f"m{j}" for j in range(150)} <= {k for d in big for k in d}


async def test_library_over_tcp(harness: Any) -> None:
    h = await harness()
    port = h.inp.ports()[0]
    await asyncio.to_thread(run_app, f"tcp://127.0.0.1:{port}", 50)
    await wait_for(lambda: h.inp.documents >= 53, timeout=10)
    await h.stop()
    check_library_output(h.records(), 50)
    assert h.losses == {}
    assert h.inp.counters()["split_documents"] == 0  # the library's documents were valid as sent


async def test_library_over_udp_with_metrics(harness: Any) -> None:
    h = await harness(emit=["logs", "metrics"], interval="1s")
    port = h.inp.ports()[1]
    await asyncio.to_thread(run_app, f"udp://127.0.0.1:{port}", 50)
    await wait_for(lambda: h.inp.documents >= 53, timeout=10)
    await h.stop()
    check_library_output(h.records(), 50)
    points = h.records(METRICS)
    latency = [m for m in points if m.name == "Latency" and m.tags.get("Service") == "checkout"]
    merged = as_distribution([])
    for m in latency:
        merged.merge(as_distribution(m.value))
    assert merged.count == 50 and merged.sum == 5 * sum(range(10))
    assert all(m.tags["namespace"] == "CollectorTest" and m.unit == "Milliseconds" for m in latency)
    samples = [m for m in points if m.name == "Samples"]
    assert sum(as_distribution(m.value).count for m in samples) == 250
    assert all(m.interval == 1.0 for m in points)


async def test_invalid_documents_are_repaired_split_or_counted(harness: Any, caplog: pytest.LogCaptureFixture) -> None:
    h = await harness(max_document_bytes=4096)
    port = h.inp.ports()[0]
    too_many = {
        "_aws": {
            "Timestamp": 1764150000000,
            "CloudWatchMetrics": [
                {"Namespace": "App", "Dimensions": [["S"]], "Metrics": [{"Name": f"m{i}"} for i in range(120)]}
            ],
        },
        "S": "x",
        **{f"m{i}": i for i in range(120)},
    }
    without_value = {
        "_aws": {
            "Timestamp": 1764150000000,
            "CloudWatchMetrics": [{"Namespace": "App", "Dimensions": [[]], "Metrics": [{"Name": "a"}, {"Name": "b"}]}],
        },
        "a": 1,
    }
    lines = [
        orjson.dumps(too_many),
        orjson.dumps(without_value),
        b'{"plain": "json, no metadata"}',
        b"not json at all",
        b"[1, 2]",
        b'{"pad": "' + b"x" * 5000 + b'"}',
    ]

    def send() -> None:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"\n".join(lines) + b"\n")

    with caplog.at_level(logging.WARNING, logger="test.emf"):
        await asyncio.to_thread(send)
        await wait_for(lambda: h.inp.documents >= 5 and h.inp.too_large >= 1, timeout=5)
        await h.stop()
    records = h.records()
    emf = [orjson.loads(r["message"]) for r in records if r.get("_emf")]
    assert len(emf) == 3  # 120 metrics in two documents, and the one without its broken metric
    assert sorted(len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) for d in emf) == [1, 20, 100]
    plain = [r for r in records if not r.get("_emf")]
    assert [orjson.loads(r["message"]) for r in plain] == [{"plain": "json, no metadata"}]
    assert h.losses == {"emf_metric_without_value": 1, "invalid_json": 2, "emf_too_large": 1}
    messages = {r.getMessage() for r in caplog.records}
    assert any("CloudWatch would ignore" in m for m in messages)
    assert any("not JSON objects" in m for m in messages)
    assert any("max_document_bytes" in m for m in messages)


async def test_metrics_only(harness: Any) -> None:
    h = await harness(emit=["metrics"], namespace_tag=None)
    assert EmfInput.emitted_kinds(h.inp.config) == frozenset({METRICS})
    doc = {
        "_aws": {
            "Timestamp": 1764150000000,
            "CloudWatchMetrics": [{"Namespace": "App", "Dimensions": [["S"]], "Metrics": [{"Name": "x"}]}],
        },
        "S": "a",
        "x": [1, 2, 3],
    }
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.sendto(orjson.dumps(doc) + b"\n", ("127.0.0.1", h.inp.ports()[1]))
    udp.close()
    await wait_for(lambda: h.inp.documents >= 1, timeout=5)
    await h.stop()
    assert h.records(LOGS) == []
    (point,) = h.records(METRICS)
    assert (point.name, point.tags, point.timestamp) == ("x", {"S": "a"}, 1764150000.0 // 60 * 60)
    assert point.value["count"] == 3.0


@pytest.mark.parametrize(
    "options",
    [
        {"emit": []},
        {"emit": ["logs", "logs"]},
        {"emit": ["traces"]},
        {"max_document_bytes": "2MiB"},
        {"interval": "7s"},
    ],
)
def test_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EmfConfig.model_validate({"type": "emf", **options})


def emf_doc(i: int, stamp: int) -> bytes:
    doc = {
        "_aws": {
            "Timestamp": stamp,
            "CloudWatchMetrics": [{"Namespace": "App", "Dimensions": [["S"]], "Metrics": [{"Name": "n"}]}],
        },
        "S": "a",
        "n": i,
    }
    return orjson.dumps(doc)


async def test_unrepresentable_timestamps_cost_only_their_document(harness: Any) -> None:
    # `1e300` used to become an integer wider than 64 bits that orjson could not write back: the exception
    # closed the connection and the rest of the stream was lost, uncounted.
    h = await harness()
    port = h.inp.ports()[0]
    hostile = [b"1e300", b"-1e300", b"-5", b"1e19", b"18446744073709551615", b'"yesterday"', b"true", b"[1]"]
    lines = []
    for i in range(2000):
        stamp = hostile[i // 8 % len(hostile)] if i % 8 == 3 else str(1764150000000 + i).encode()
        lines.append(emf_doc(i, 1).replace(b'"Timestamp":1,', b'"Timestamp":' + stamp + b","))

    def send() -> None:
        with socket.create_connection(("127.0.0.1", port)) as conn:
            conn.sendall(b"\n".join(lines) + b"\n")

    before = int(time.time() * 1000)
    await asyncio.to_thread(send)
    await wait_for(lambda: h.inp.documents >= 2000, timeout=10)
    await h.stop()
    docs = [orjson.loads(r["message"]) for r in h.records()]
    assert sorted(d["n"] for d in docs) == list(range(2000)), "every document, the hostile ones too"
    repaired = [d for d in docs if d["n"] % 8 == 3]
    assert all(before <= d["_aws"]["Timestamp"] <= int(time.time() * 1000) for d in repaired), "receipt time"
    assert all(d["_aws"]["Timestamp"] == 1764150000000 + d["n"] for d in docs if d["n"] % 8 != 3)
    counters = h.inp.counters()
    assert counters["invalid_timestamps"] == 250 and counters["failed_documents"] == 0
    assert h.losses == {}


async def test_a_document_that_fails_unforeseen_is_dropped_alone_and_counted(harness: Any) -> None:
    h = await harness()
    check = h.inp.checker.check

    def flaky_check(doc: dict[str, Any], now_ms: int) -> Any:
        if doc.get("n") == 5:
            raise OverflowError("an unforeseen bug")
        return check(doc, now_ms)

    h.inp.checker.check = flaky_check
    records, _ = h.inp.process([emf_doc(i, 1764150000000) for i in range(10)])
    assert [orjson.loads(r["message"])["n"] for r in records] == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    assert h.losses == {"emf_document_error": 1} and h.inp.counters()["failed_documents"] == 1
