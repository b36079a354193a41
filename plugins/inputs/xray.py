"""`xray`: a drop-in for the AWS X-Ray daemon's receiving side.

- UDP (default 127.0.0.1:2000): one segment or subsegment document per
  datagram, after the header line `{"format":"json","version":1}`. Datagrams
  are parsed and validated in the protocol callback, synchronously, as they
  arrive (`xray_daemon/receiver.py`, `xray_daemon/datagram.py`); the run loop
  takes everything pending at once and emits it in batches. The document's
  bytes are kept in the record's `raw` and forwarded byte for byte by the
  `xray` output.
- TCP on the same address (or its own, `udp:... tcp:...`): the centralised
  sampling proxy (`xray_daemon/sampling_proxy.py`), signing the SDKs' requests.

Nothing is lost without being counted: datagrams rejected by validation are
counted per reason in the loss ledger; while downstream is full, records wait
in a queue bounded by `max_pending_bytes` and, past it, are dropped and counted
(`queue_full`) because UDP cannot slow a sender; datagrams the kernel dropped
for a full socket buffer are read from the socket's drop counter
(`common/kernel_drops.py`, the same as every UDP input) and counted
(`kernel_drops`). Each reason is logged at most once a minute, with a sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from collector.api import ComponentContext, Input, InputConfig, InputContext
from collector.events import TRACES, Batch
from collector.log import RepeatLimiter, kv
from collector.units import Duration, Size
from collector_plugins.common.aws.session import AwsClients
from collector_plugins.common.aws.settings import AwsSettings
from collector_plugins.common.kernel_drops import KERNEL_DROPS, KernelDrops
from collector_plugins.common.listen import Address, bind, release
from collector_plugins.inputs.xray_daemon.address import ENV_VAR, resolve_daemon_address
from collector_plugins.inputs.xray_daemon.datagram import MAX_DOCUMENT_BYTES
from collector_plugins.inputs.xray_daemon.receiver import SegmentReceiver
from collector_plugins.inputs.xray_daemon.sampling_proxy import SamplingProxy

MAX_BATCH_SIZE = 100_000
STOPPED = "stopped"
# How often the kernel's drop counter is read (one getsockopt, see common/kernel_drops.py).
KERNEL_DROPS_INTERVAL = 1.0
# At stop, at most this many datagrams still in the kernel's buffer are read (more than a 64MiB buffer holds).
DRAIN_LIMIT = 200_000
RECV_SIZE = 65536


class XRayInputConfig(AwsSettings, InputConfig):
    type: Literal["xray"] = Field(
        description="Receives X-Ray segments over UDP and proxies sampling requests, like the X-Ray daemon.",
        examples=["xray"],
    )
    listen: str | None = Field(
        default=None,
        description=(
            "Where to listen, in the X-Ray SDKs' address forms: `host:port` (UDP and TCP on the same address) or "
            f"`udp:host:port tcp:host:port`. Unset: the {ENV_VAR} environment variable, else 127.0.0.1:2000. "
            "Use 0.0.0.0 only where other containers must reach it (a sidecar)."
        ),
        examples=["127.0.0.1:2000", "udp:0.0.0.0:2000 tcp:127.0.0.1:2000"],
    )
    sampling_proxy: bool = Field(
        default=True,
        description="Serve the centralised sampling proxy on the TCP address (GetSamplingRules, SamplingTargets).",
        examples=[True],
    )
    receive_buffer: Size = Field(
        default=16 * 1024 * 1024,
        description=(
            "Socket receive buffer to ask the kernel for: what absorbs bursts while the collector is busy. "
            "Without CAP_NET_ADMIN the kernel caps it at net.core.rmem_max."
        ),
        examples=["16MiB", "64MiB"],
    )
    max_pending_bytes: Size = Field(
        default=64 * 1024 * 1024,
        description=(
            "Most document bytes held while downstream is full; past it new segments are dropped and counted "
            "(queue_full), as UDP cannot slow the sender."
        ),
        examples=["64MiB"],
    )
    max_document_bytes: Size = Field(
        default=MAX_DOCUMENT_BYTES,
        description="Larger documents are rejected (too_large); X-Ray's own limit is 64 KiB per segment document.",
        examples=["64KiB"],
    )
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="Emit a batch as soon as this many segments are waiting.",
        examples=[1000],
    )
    batch_timeout: Duration = Field(
        default=0.1,
        description="Emit what is waiting at least this often.",
        examples=["100ms"],
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value is not None:
            resolve_daemon_address(value)
        return value

    @field_validator("batch_timeout")
    @classmethod
    def _check_timeout(cls, value: float) -> float:
        if not 0 < value <= 10:
            raise ValueError("batch_timeout must be greater than 0 and at most 10s")
        return value

    @field_validator("max_document_bytes")
    @classmethod
    def _check_document_bytes(cls, value: int) -> int:
        if not 1024 <= value <= MAX_DOCUMENT_BYTES:
            raise ValueError(f"max_document_bytes must be between 1KiB and {MAX_DOCUMENT_BYTES} (X-Ray's limit)")
        return value

    @model_validator(mode="after")
    def _check_environment(self) -> XRayInputConfig:
        if self.listen is None:
            resolve_daemon_address(None)  # a malformed AWS_XRAY_DAEMON_ADDRESS is a config error, named as such
        return self


def _set_receive_buffer(sock: socket.socket, size: int) -> int:
    """Ask for `size` bytes (beyond rmem_max when privileged); returns what the kernel granted."""
    force = getattr(socket, "SO_RCVBUFFORCE", None)
    try:
        if force is None:
            raise PermissionError
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:  # unprivileged (PermissionError) or not supported: the kernel caps at rmem_max
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))


class XRayInput(Input):
    type_name: ClassVar[str] = "xray"
    description: ClassVar[str] = (
        "Receives X-Ray segments over UDP and serves the sampling proxy over TCP, like the AWS X-Ray daemon."
    )
    Config: ClassVar[type[XRayInputConfig]] = XRayInputConfig
    emits: ClassVar[frozenset[str]] = frozenset((TRACES,))

    config: XRayInputConfig

    def __init__(self, config: XRayInputConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.address, self.address_source = resolve_daemon_address(config.listen)
        self._wake = asyncio.Event()
        self.receiver = SegmentReceiver(
            batch_size=config.batch_size,
            max_pending_bytes=config.max_pending_bytes,
            wake=self._wake.set,
            max_document_bytes=config.max_document_bytes,
        )
        self.segments = 0
        """Valid segments emitted so far."""
        self.rejected = 0
        """Datagrams dropped so far, for any reason (the loss ledger has them per reason)."""
        self.receive_buffer = 0
        """The socket receive buffer the kernel granted (bytes, as the kernel reports it)."""
        self._udp_address = Address("udp", self.address.udp_host, self.address.udp_port)
        self._tcp_address = Address("tcp", self.address.tcp_host, self.address.tcp_port)
        self._udp: socket.socket | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._kernel: KernelDrops | None = None
        self._kernel_drops = 0
        self._clients: AwsClients | None = None
        self._proxy: SamplingProxy | None = None
        self._limiter = RepeatLimiter(interval=60.0)
        self._unlogged: dict[str, int] = {}  # drops per reason not yet in a log line

    def counters(self) -> dict[str, float]:
        proxy = self._proxy
        return {
            "datagrams": self.receiver.datagrams,
            "segments": self.segments,
            "rejected": self.rejected,
            "pending_bytes": self.receiver.pending_bytes,
            "receive_buffer_bytes": self.receive_buffer,
            "kernel_drops": self._kernel_drops,
            "sampling_requests": proxy.requests if proxy else 0,
            "sampling_failures": proxy.failures if proxy else 0,
        }

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        try:
            await self._open()
        except BaseException:
            await self.stop()
            raise

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        self._udp = bind(self._udp_address)
        self.receive_buffer = _set_receive_buffer(self._udp, self.config.receive_buffer)
        self._kernel = KernelDrops(self._udp)
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self.receiver, sock=self._udp)
        if self.config.sampling_proxy:
            tcp = bind(self._tcp_address)
            self._clients = AwsClients(self.config, self.ctx)
            self._proxy = SamplingProxy(self._clients, self.log, self.ctx.name)
            try:
                await self._proxy.start(tcp)
            except BaseException:
                release(self._tcp_address, tcp)
                raise
        self.log.info(
            "listening for X-Ray segments",
            extra=kv(
                component=self.ctx.name,
                udp=str(self._udp_address),
                sampling_proxy=str(self._tcp_address) if self.config.sampling_proxy else "off",
                address_from=self.address_source,
                receive_buffer=self.receive_buffer,
            ),
        )
        # Linux reports twice what was granted (bookkeeping overhead); less than asked means capped by rmem_max.
        if self.receive_buffer < self.config.receive_buffer:
            self.log.warning(
                "socket receive buffer is smaller than configured; raise net.core.rmem_max or run with "
                "CAP_NET_ADMIN so bursts are not dropped by the kernel",
                extra=kv(component=self.ctx.name, asked=self.config.receive_buffer, granted=self.receive_buffer),
            )

    async def stop(self) -> None:
        self._close_udp()
        leftover = len(self.receiver.pending)
        if leftover:
            # Received but never emitted (the run loop failed): counted, not silently gone.
            self.receiver.take()
            self.rejected += leftover
            self.ctx.loss(STOPPED, leftover)
        # Both are kept after stopping (their counters stay readable); stopping again is harmless.
        if self._proxy is not None:
            await self._proxy.stop()
        if self._clients is not None:
            await self._clients.close()

    def _drain_socket(self) -> None:
        """Read the datagrams waiting in the socket's buffer (bounded: a sender may still be sending)."""
        sock, receive = self._udp, self.receiver.datagram_received
        if sock is None or self._transport is None:
            return
        for _ in range(DRAIN_LIMIT):
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except OSError:  # BlockingIOError once the buffer is empty
                return
            receive(data, addr)

    def _close_udp(self) -> None:
        self._count_kernel_drops()  # while the socket is still open
        self._kernel = None
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()  # closes the socket too
            self._udp = None
        elif self._udp is not None:
            self._udp.close()
            self._udp = None

    # ----------------------------------------------------------------- the loop

    async def run(self, ctx: InputContext) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.config.batch_timeout
        stop_watch = asyncio.ensure_future(ctx.stopping.wait())
        stop_watch.add_done_callback(lambda _: self._wake.set())
        next_kernel_check = loop.time() + KERNEL_DROPS_INTERVAL
        try:
            while True:
                if ctx.stopping.is_set():
                    # Take what the kernel still holds, stop receiving, then emit everything received below.
                    self._drain_socket()
                    self._close_udp()  # counts the kernel's drops one last time
                    await self._flush(ctx)
                    return
                await self._flush(ctx)
                if loop.time() >= next_kernel_check:
                    self._count_kernel_drops()
                    next_kernel_check = loop.time() + KERNEL_DROPS_INTERVAL
                if len(self.receiver.pending) >= self.config.batch_size:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            stop_watch.cancel()

    async def _flush(self, ctx: InputContext) -> None:
        """Emit everything pending in batches of `batch_size`, then account for the rejected datagrams."""
        self._account_rejected()
        receiver = self.receiver
        records, nbytes = receiver.take()
        if not records:
            return
        size = self.config.batch_size
        total = len(records)
        self.segments += total
        if total <= size:
            chunks = [(records, nbytes)]
        else:
            per_record = nbytes // total
            pieces = [records[i : i + size] for i in range(0, total, size)]
            chunks = [(piece, per_record * len(piece)) for piece in pieces]
        receiver.held_bytes = nbytes
        try:
            for chunk, chunk_bytes in chunks:
                await ctx.emit(Batch(TRACES, chunk, chunk_bytes))
                receiver.held_bytes -= chunk_bytes
        finally:
            receiver.held_bytes = 0

    def _account_rejected(self) -> None:
        rejected, samples = self.receiver.take_rejected()
        for reason, count in rejected.items():
            self.rejected += count
            self.ctx.loss(reason, count)
            self._log_drop(reason, count, samples.get(reason))
        receiver = self.receiver
        if receiver.socket_errors:
            errors, receiver.socket_errors = receiver.socket_errors, 0
            now, _, suppressed = self._limiter.check("socket_error")
            if now:
                self.log.warning(
                    "UDP socket reported errors",
                    extra=kv(
                        component=self.ctx.name,
                        errors=errors + suppressed,
                        error=receiver.last_socket_error,
                    ),
                )

    def _count_kernel_drops(self) -> None:
        if self._kernel is None:
            return
        dropped = self._kernel.delta()
        if dropped:
            self._kernel_drops += dropped
            self.rejected += dropped
            self.ctx.loss(KERNEL_DROPS, dropped)
            self._log_drop(KERNEL_DROPS, dropped, None)

    def _log_drop(self, reason: str, count: int, sample: bytes | None) -> None:
        unlogged = self._unlogged.get(reason, 0) + count
        now, _, _ = self._limiter.check("drop", reason)
        if not now:
            self._unlogged[reason] = unlogged
            return
        self._unlogged.pop(reason, None)
        fields: dict[str, Any] = {"component": self.ctx.name, "reason": reason, "datagrams": unlogged}
        if sample is not None:
            fields["sample"] = sample.decode("utf-8", "replace")
        if reason == KERNEL_DROPS:
            fields["hint"] = "raise receive_buffer (and net.core.rmem_max)"
        level = logging.ERROR if reason in (KERNEL_DROPS, "queue_full") else logging.WARNING
        self.log.log(
            level,
            "X-Ray datagrams dropped since the last report (counted in the loss ledger)",
            extra={"fields": fields},
        )
