"""The X-Ray daemon replacement end to end: the real aws-xray-sdk -> `xray` input -> `xray` output -> moto's X-Ray.

The collector runs in-process (the runtime, from a config file, as `collector run`
builds it); the instrumented app is the real SDK with a recording emitter, so
every document can be compared with what X-Ray stored, byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aws_xray_sdk.core import AWSXRayRecorder
from aws_xray_sdk.core.emitters.udp_emitter import UDPEmitter
from aws_xray_sdk.core.sampling.local.sampler import LocalSampler

from collector.api import HostFacts
from collector.config import load_config
from collector.runtime import Runtime
from collector.testing import free_port, wait_for
from tests.moto import MotoServer


class RecordingEmitter(UDPEmitter):
    """The SDK's own UDP emitter, keeping a copy of every document it sends."""

    def __init__(self, address: str) -> None:
        super().__init__(address)
        self.documents: dict[str, str] = {}

    def _send_data(self, data: str) -> None:
        super()._send_data(data)  # raises (and the SDK drops the document) if the socket cannot take it
        document = data.split("\n", 1)[1]
        self.documents[orjson.loads(document)["id"]] = document


@contextlib.contextmanager
def instrumented_app(port: int, **options: Any) -> Iterator[tuple[AWSXRayRecorder, RecordingEmitter]]:
    emitter = RecordingEmitter(f"127.0.0.1:{port}")
    xray = AWSXRayRecorder()
    xray.emitter._socket.close()  # the default emitter, replaced below
    xray.configure(emitter=emitter, sampling=False, context_missing="LOG_ERROR", service="shop", **options)
    xray.sampler = LocalSampler()  # sampling=False: every request is traced
    try:
        yield xray, emitter
    finally:
        emitter._socket.close()


async def serve(xray: AWSXRayRecorder, requests: range) -> set[str]:
    """The app serving requests; the collector runs in the same event loop here, so let it read in between
    (over loopback, unread datagrams hold the sender's socket buffer and the SDK would drop what does not fit)."""
    trace_ids = set()
    for n in requests:
        trace_ids.add(handle_request(xray, n))
        await asyncio.sleep(0.001)  # not a wait: the app's pace (see above)
    return trace_ids


def handle_request(xray: AWSXRayRecorder, n: int) -> str:
    """One request of the app: a segment with HTTP data, nested subsegments, annotations and metadata."""
    segment = xray.begin_segment("checkout")
    segment.put_http_meta("method", "POST")
    segment.put_http_meta("url", f"https://shop.example/cart/{n}")
    segment.put_annotation("order", n)
    with xray.in_subsegment("load-cart") as sub:
        sub.put_metadata("items", [{"sku": f"sku-{i}", "qty": i} for i in range(3)], "shop")
        with xray.in_subsegment("dynamodb") as inner:
            inner.namespace = "aws"
            inner.put_annotation("table", "carts")
    with xray.in_subsegment("charge") as sub:
        sub.put_annotation("amount", 12.5 + n)
        sub.add_exception(ValueError("card declined"), [], remote=False) if n % 5 == 0 else None
    segment.put_http_meta("status", 200)
    xray.end_segment()
    return segment.trace_id


def config_text(tmp_path: Path, udp: int, endpoint: str, region: str) -> str:
    return f"""
data_dir: {tmp_path / "data"}
api: {{enabled: false}}
inputs:
  xray:
    type: xray
    listen: "udp:127.0.0.1:{udp} tcp:127.0.0.1:{free_port()}"
    sampling_proxy: false
outputs:
  traces:
    type: xray
    inputs: [xray]
    region: {region}
    endpoint_url: {endpoint}
    connect_timeout: 1s
    read_timeout: 5s
    buffer: {{type: disk, max_bytes: 64MiB}}
    retry: {{initial_backoff: 100ms, max_backoff: 500ms}}
"""


@contextlib.asynccontextmanager
async def collector(config_path: Path) -> AsyncIterator[Runtime]:
    config = load_config(config_path)
    runtime = Runtime(config.data_dir, HostFacts("node-1"))
    await runtime.apply(config.graph)
    # Components start in their own tasks: wait until the UDP socket is bound.
    await wait_for(lambda: runtime.stats["xray"].state == "running")
    try:
        yield runtime
    finally:
        await runtime.shutdown(5)


def xray_documents(moto: MotoServer, trace_ids: set[str]) -> dict[str, str]:
    client = moto.client("xray")
    found: dict[str, str] = {}
    ids = sorted(trace_ids)
    for start in range(0, len(ids), 5):  # BatchGetTraces takes 5 trace ids per call
        for trace in client.batch_get_traces(TraceIds=ids[start : start + 5])["Traces"]:
            found.update({s["Id"]: s["Document"] for s in trace["Segments"]})
    return found


async def test_sdk_segments_and_subsegments_arrive_intact(moto: MotoServer, tmp_path: Path) -> None:
    udp = free_port(socket.SOCK_DGRAM)
    path = tmp_path / "collector.yaml"
    path.write_text(config_text(tmp_path, udp, moto.endpoint_url, moto.region))
    async with collector(path) as runtime:
        with instrumented_app(udp, streaming_threshold=1) as (xray, emitter):
            trace_ids = await serve(xray, range(30))
        await wait_for(lambda: runtime.stats["traces"].sent_events == len(emitter.documents), timeout=10)
    stored = await asyncio.to_thread(xray_documents, moto, trace_ids)
    assert stored == emitter.documents  # every segment and streamed subsegment, byte for byte
    assert any(orjson.loads(d).get("type") == "subsegment" for d in stored.values())
    now = int(time.time())
    summaries = moto.client("xray").get_trace_summaries(StartTime=now - 600, EndTime=now + 600)["TraceSummaries"]
    assert trace_ids <= {s["Id"] for s in summaries}
    assert not runtime.stats["xray"].dropped and not runtime.stats["traces"].dropped


class Gate:
    """A TCP forwarder to moto that can refuse connections: an X-Ray endpoint with an outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()
        self.refused_while_down = 0

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port, reuse_address=True)

    async def down(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection."""
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        self.server = None
        for task in list(self.pipes):
            task.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.pipes.add(task)
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
            dst.close()

        try:
            await asyncio.gather(copy(reader, upstream_writer), copy(upstream_reader, writer))
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()
            upstream_writer.close()
            self.pipes.discard(task)


@pytest.mark.slow
async def test_outage_and_restart_lose_nothing(moto: MotoServer, tmp_path: Path) -> None:
    """X-Ray refuses connections for 5 s; meanwhile the collector restarts. Every segment still arrives."""
    gate = Gate(int(moto.endpoint_url.rsplit(":", 1)[1]))
    await gate.up()
    udp = free_port(socket.SOCK_DGRAM)
    path = tmp_path / "collector.yaml"
    path.write_text(config_text(tmp_path, udp, f"http://127.0.0.1:{gate.port}", moto.region))
    trace_ids: set[str] = set()
    with instrumented_app(udp) as (xray, emitter):
        async with collector(path) as runtime:
            trace_ids |= await serve(xray, range(20))
            await wait_for(lambda: runtime.stats["traces"].sent_events == len(emitter.documents), timeout=10)

            await gate.down()
            outage_started = time.monotonic()
            trace_ids |= await serve(xray, range(20, 220))
            await wait_for(lambda: runtime.stats["traces"].retries > 0, timeout=5)
            await wait_for(lambda: runtime.stats["traces"].received_events == len(emitter.documents), timeout=5)
            assert runtime.stats["traces"].sent_events < len(emitter.documents)
        # The collector stopped during the outage: what was not delivered waits in the disk buffer.
        await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - outage_started)))  # not a wait: a 5 s outage
        await gate.up()
        async with collector(path) as runtime:
            delivered_before = len(await asyncio.to_thread(xray_documents, moto, trace_ids))
            missing = len(emitter.documents) - delivered_before
            assert missing > 0
            await wait_for(lambda: runtime.stats["traces"].sent_events >= missing, timeout=20)
    stored = await asyncio.to_thread(xray_documents, moto, trace_ids)
    assert stored == emitter.documents
    await gate.down()


OUTAGE_SECONDS = 60.0


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_a_minute_long_outage_loses_nothing_and_retries_stay_bounded(moto: MotoServer, tmp_path: Path) -> None:
    """X-Ray refuses connections for a minute while the app keeps sending (the daemon drops segments when its
    send queue is full and never retries); when it returns, every segment arrives, with a bounded number of
    attempts in between."""
    gate = Gate(int(moto.endpoint_url.rsplit(":", 1)[1]))
    await gate.up()
    udp = free_port(socket.SOCK_DGRAM)
    path = tmp_path / "collector.yaml"
    config = config_text(tmp_path, udp, f"http://127.0.0.1:{gate.port}", moto.region)
    path.write_text(config.replace("max_backoff: 500ms", "max_backoff: 5s"))
    trace_ids: set[str] = set()
    with instrumented_app(udp) as (xray, emitter):
        async with collector(path) as runtime:
            traces = runtime.stats["traces"]
            await gate.down()
            deadline = time.monotonic() + OUTAGE_SECONDS
            n = 0
            while time.monotonic() < deadline:  # two requests a second through the whole outage
                trace_ids |= await serve(xray, range(n, n + 2))
                n += 2
                await asyncio.sleep(0.5)  # not a wait: the app's pace through the outage
            assert traces.sent_events == 0 and traces.received_events == len(emitter.documents)
            attempts_during_outage = traces.retries
            await gate.up()
            await wait_for(lambda: traces.sent_events == len(emitter.documents), timeout=30)
            assert not runtime.stats["xray"].dropped and not traces.dropped
    stored = await asyncio.to_thread(xray_documents, moto, trace_ids)
    print(
        f"outage {OUTAGE_SECONDS:.0f}s: {len(stored)} of {len(emitter.documents)} documents stored, "
        f"{attempts_during_outage} retries during the outage"
    )
    assert stored == emitter.documents
    # Full-jitter backoff up to 5 s (2.5 s on average once grown): each of the at most `concurrency` (8)
    # requests in flight retries about 24 times in a minute (~200 in all, 209 seen), never in a tight loop.
    assert 0 < attempts_during_outage <= 8 * 40
    await gate.down()
