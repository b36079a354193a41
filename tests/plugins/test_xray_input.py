"""The `xray` input on a real UDP socket, fed by the real aws-xray-sdk and by hand-made bad datagrams."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aws_xray_sdk.core import AWSXRayRecorder
from aws_xray_sdk.core.sampling.local.sampler import LocalSampler
from pydantic import ValidationError

from collector.api import HostFacts, InputContext
from collector.events import TRACES, Batch
from collector.testing import free_port, wait_for
from collector_plugins.inputs.xray.datagram import HEADER
from collector_plugins.inputs.xray.input import XRayInput, XRayInputConfig

TRACE_ID = "1-5759e988-bd862e3fe1be46a994272793"


class Harness:
    """An input with its context: what it emitted and what it counted as lost."""

    def __init__(self, tmp_path: Path, emit: Callable[[Batch], Awaitable[None]] | None = None) -> None:
        self.batches: list[Batch] = []
        self.losses: dict[str, int] = {}

        async def collect(batch: Batch) -> None:
            self.batches.append(batch)

        def loss(reason: str, events: int) -> None:
            self.losses[reason] = self.losses.get(reason, 0) + events

        self.ctx = InputContext(
            "xray_in",
            logging.getLogger("test.xray"),
            tmp_path,
            HostFacts("h"),
            emit or collect,
            asyncio.Event(),
            loss=loss,
        )

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for b in self.batches for r in b.records]


@contextlib.asynccontextmanager
async def running(harness: Harness, **options: Any) -> AsyncIterator[XRayInput]:
    options.setdefault("sampling_proxy", False)
    config = XRayInputConfig(type="xray", **options)
    instance = XRayInput(config, harness.ctx)
    await instance.start()
    task = asyncio.create_task(instance.run(harness.ctx))
    try:
        yield instance
    finally:
        harness.ctx.stopping.set()
        await asyncio.wait_for(task, 5)
        await instance.stop()


@contextlib.contextmanager
def recorder(port: int, **options: Any) -> Iterator[AWSXRayRecorder]:
    """A recorder of the real SDK sending to `port`; its UDP socket (which the SDK never closes) closed after."""
    xray = AWSXRayRecorder()
    xray.configure(
        daemon_address=f"127.0.0.1:{port}", sampling=False, context_missing="LOG_ERROR", service="shop", **options
    )
    xray.sampler = LocalSampler()  # sampling=False samples every request
    try:
        yield xray
    finally:
        xray.emitter._socket.close()


def send(port: int, *datagrams: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for data in datagrams:
            s.sendto(data, ("127.0.0.1", port))


async def test_sdk_segments_and_streamed_subsegments_arrive_as_records(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    port = free_port(socket.SOCK_DGRAM)
    async with running(harness, listen=f"127.0.0.1:{port}"):
        with recorder(port, streaming_threshold=2) as xray:
            segment = xray.begin_segment("checkout")
            for n in range(5):
                with xray.in_subsegment(f"step-{n}") as sub:
                    sub.put_annotation("n", n)
            xray.end_segment()
        # The segment itself is sent last, after the streamed subsegments.
        await wait_for(lambda: any(r["id"] == segment.id for r in harness.records))
    docs = [orjson.loads(r["raw"]) for r in harness.records]
    assert all(b.kind == TRACES for b in harness.batches)
    assert all(r["trace_id"] == segment.trace_id for r in harness.records)
    root = next(d for d in docs if d["id"] == segment.id)
    streamed = [d for d in docs if d.get("type") == "subsegment"]
    assert streamed and all(d["parent_id"] == segment.id for d in streamed)
    names = {s["name"] for s in root.get("subsegments", [])} | {d["name"] for d in streamed}
    assert names == {f"step-{n}" for n in range(5)}
    for record, parsed in zip(harness.records, docs, strict=True):
        assert (record["id"], record["name"], record["start_time"]) == (
            parsed["id"],
            parsed["name"],
            parsed["start_time"],
        )
    assert harness.losses == {}
    assert sum(b.nbytes for b in harness.batches) == sum(len(HEADER) + len(r["raw"]) for r in harness.records)


async def test_every_bad_datagram_is_counted_by_reason(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    port = free_port(socket.SOCK_DGRAM)
    good = orjson.dumps(
        {"trace_id": TRACE_ID, "id": "53995c3f42cd8ad8", "name": "a", "start_time": 1.0, "in_progress": True}
    )
    async with running(harness, listen=f"127.0.0.1:{port}", max_document_bytes="1KiB") as xray_in:
        send(
            port,
            b"hello",
            HEADER,
            HEADER + b"{not json",
            HEADER + b'{"name": "\xff"}',
            HEADER + good.replace(b"53995c3f42cd8ad8", b"xyz"),
            HEADER + b'{"name": "' + b"x" * 2000 + b'"}',
            HEADER + good,
        )
        await wait_for(lambda: xray_in.receiver.datagrams == 7 and xray_in.segments == 1)
        await wait_for(lambda: sum(harness.losses.values()) == 6)
    assert harness.losses == {
        "bad_header": 1,
        "empty_document": 1,
        "invalid_json": 1,
        "invalid_utf8": 1,
        "invalid_id": 1,
        "too_large": 1,
    }
    assert [r["raw"] for r in harness.records] == [good]
    assert xray_in.counters()["rejected"] == 6


async def test_full_downstream_drops_past_the_bound_and_counts_every_one(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def slow_emit(batch: Batch) -> None:
        await release.wait()
        harness.batches.append(batch)

    harness = Harness(tmp_path, slow_emit)
    port = free_port(socket.SOCK_DGRAM)
    document = orjson.dumps(
        {"trace_id": TRACE_ID, "id": "53995c3f42cd8ad8", "name": "n" * 900, "start_time": 1.0, "end_time": 2.0}
    )
    sent = 300
    async with running(harness, listen=f"127.0.0.1:{port}", max_pending_bytes="50KiB", batch_size=10) as xray_in:
        for _ in range(sent):
            send(port, HEADER + document)
            await asyncio.sleep(0)  # let the loop read; the first batch is stuck in emit
        await wait_for(lambda: xray_in.receiver.datagrams == sent)
        release.set()
    delivered = len(harness.records)
    assert harness.losses.get("queue_full", 0) > 0
    assert delivered + harness.losses["queue_full"] == sent
    assert delivered >= 50_000 // (len(HEADER) + len(document))


async def test_kernel_drops_are_counted(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    port = free_port(socket.SOCK_DGRAM)
    document = HEADER + orjson.dumps(
        {"trace_id": TRACE_ID, "id": "53995c3f42cd8ad8", "name": "x" * 1000, "start_time": 1.0, "end_time": 2.0}
    )
    sent = 200
    async with running(harness, listen=f"127.0.0.1:{port}", receive_buffer=4096) as xray_in:
        if xray_in._kernel is None or xray_in._kernel.read() is None:
            pytest.skip("no /proc/net/udp drop counter on this system")
        send(port, *[document] * sent)  # synchronously: the loop cannot read meanwhile, the small buffer overflows
        await wait_for(lambda: xray_in.receiver.datagrams + harness.losses.get("kernel_drops", 0) == sent)
    assert harness.losses["kernel_drops"] > 0
    assert len(harness.records) + harness.losses["kernel_drops"] == sent


async def test_stop_emits_what_was_received(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    port = free_port(socket.SOCK_DGRAM)
    document = HEADER + orjson.dumps(
        {"trace_id": TRACE_ID, "id": "53995c3f42cd8ad8", "name": "a", "start_time": 1.0, "end_time": 2.0}
    )
    async with running(harness, listen=f"127.0.0.1:{port}", batch_timeout=10) as xray_in:
        send(port, *[document] * 5)
        await wait_for(lambda: xray_in.receiver.datagrams == 5)
        assert harness.records == []  # still waiting for the (long) batch timeout
    assert len(harness.records) == 5


async def test_stop_reads_what_the_kernel_still_holds(tmp_path: Path) -> None:
    harness = Harness(tmp_path)
    port = free_port(socket.SOCK_DGRAM)
    document = HEADER + orjson.dumps(
        {"trace_id": TRACE_ID, "id": "53995c3f42cd8ad8", "name": "a", "start_time": 1.0, "end_time": 2.0}
    )
    async with running(harness, listen=f"127.0.0.1:{port}") as xray_in:
        await asyncio.sleep(0)  # the run loop is waiting
        send(port, *[document] * 50)  # no await after this: the loop has not read them when stop begins
        assert xray_in.receiver.datagrams == 0
    assert len(harness.records) == 50 and harness.losses == {}


async def test_listens_where_the_environment_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port(socket.SOCK_DGRAM)
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", f"udp:127.0.0.1:{port} tcp:127.0.0.1:{free_port()}")
    harness = Harness(tmp_path)
    async with running(harness) as xray_in:
        with recorder(port) as xray:
            xray.begin_segment("env")
            xray.end_segment()
        await wait_for(lambda: xray_in.segments == 1)
    assert harness.records[0]["name"] == "env"


async def test_port_in_use_fails_start_and_leaves_nothing_open(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        harness = Harness(tmp_path)
        instance = XRayInput(XRayInputConfig(type="xray", listen=f"127.0.0.1:{port}"), harness.ctx)
        with pytest.raises(OSError):
            await instance.start()
        assert instance._udp is None and instance._proxy is None


def test_config_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="X-Ray daemon address"):
        XRayInputConfig(type="xray", listen="localhost")
    with pytest.raises(ValidationError, match="max_document_bytes"):
        XRayInputConfig(type="xray", max_document_bytes="1MiB")
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", "udp:127.0.0.1:2000")
    with pytest.raises(ValidationError, match="AWS_XRAY_DAEMON_ADDRESS"):
        XRayInputConfig(type="xray")
