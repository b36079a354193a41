"""`generator`: synthetic logs, metrics or traces, for trying a pipeline and for benchmarks.

Speed is the point of this input, so every batch is built by one list
comprehension over precomputed material:

- log messages come from a pool (512 rendered lines, or the user's `message` /
  `lines`), already padded or truncated to `message_bytes`. Generated formats
  embed a timestamp, so the pool is re-rendered when the wall-clock second
  changes: once a second, never per record.
- `pool_ext` repeats the pool so that the messages of any batch are one slice
  of it, and the batch size in bytes comes from prefix sums of the pool's
  lengths, so `Batch.nbytes` is exact without touching the records.
- one `time.time()` per batch; `sequence` counts every record this input has
  emitted (0, 1, 2, ...) so tests and benchmarks can detect loss and duplicates.

Pacing (`rate`) is a token bucket refilled per batch: the input sleeps (through
`ctx.sleep`, which wakes up on stop) until enough tokens for a batch of about
50 ms worth of events have accumulated, never per event.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator, model_validator

from collector.acks import AckTracker
from collector.api import ComponentContext, Input, InputConfig, InputContext
from collector.checkpoint import CheckpointError
from collector.events import KINDS, LOGS, METRICS, TRACES, Batch, Metric, MetricType
from collector.log import kv
from collector.units import Size

POOL_SIZE = 512
MAX_BATCH_SIZE = 100_000
MAX_MESSAGE_BYTES = 1024 * 1024
# A paced generator emits about this many seconds' worth of events per batch.
PACING_TICK = 0.05
# How often an acknowledged position is written to the checkpoint (and once more on stop).
CHECKPOINT_INTERVAL = 0.5

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Stands for the rendered timestamp in a message template.
_TS = "\x00ts\x00"


class GeneratorConfig(InputConfig):
    type: Literal["generator"] = Field(description="Synthetic event generator.", examples=["generator"])
    kind: Literal["logs", "metrics", "traces"] = Field(
        default="logs",
        description="Which signal kind to generate.",
        examples=["logs", "metrics", "traces"],
    )
    format: Literal["text", "json", "apache_common", "syslog"] = Field(
        default="text",
        description=(
            "Shape of generated log lines: `text` (an application log line), `json` (a JSON object per line), "
            "`apache_common` (an access log line) or `syslog` (RFC 5424). Logs only; ignored when `message` or "
            "`lines` is given (setting both is an error)."
        ),
        examples=["json", "apache_common"],
    )
    message: str | None = Field(
        default=None,
        description="Emit this fixed message instead of generated lines.",
        examples=["hello from the collector"],
    )
    lines: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Emit these messages in turn, cycling, instead of generated lines.",
        examples=[["first line", "second line"]],
    )
    message_bytes: Size | None = Field(
        default=None,
        description=(
            "Pad (with spaces) or truncate every message to exactly this many UTF-8 bytes. `json` lines stay "
            "valid JSON down to about 160 bytes (the `msg` value is shortened or padded)."
        ),
        examples=[200, "1KiB"],
    )
    rate: float = Field(
        default=0.0,
        ge=0,
        description="Events per second; 0 generates as fast as downstream accepts.",
        examples=[1000, 0],
    )
    count: int | None = Field(
        default=None,
        ge=0,
        description="Stop after this many events (the input then finishes); null generates until stopped.",
        examples=[1000000, None],
    )
    batch_size: int = Field(
        default=1000,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="Maximum number of events per batch.",
        examples=[1000],
    )
    checkpoint: bool = Field(
        default=False,
        description="Resume the sequence after a restart from the last position acknowledged downstream "
        "(durable in every disk buffer, or delivered); `count` then counts across restarts.",
        examples=[True],
    )
    seed: int | None = Field(
        default=None,
        description="Seed for the generated content, for reproducible output; null picks a random seed.",
        examples=[42, None],
    )

    @field_validator("message_bytes")
    @classmethod
    def _check_message_bytes(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_MESSAGE_BYTES:
            raise ValueError(f"message_bytes must be between 1 and {MAX_MESSAGE_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _check_combination(self) -> GeneratorConfig:
        given = self.model_fields_set
        if self.message is not None and self.lines is not None:
            raise ValueError("give either `message` or `lines`, not both")
        if self.kind != LOGS:
            log_only = sorted(given & {"format", "message", "lines", "message_bytes"})
            if log_only:
                raise ValueError(f"{', '.join(log_only)} only apply to kind: logs (kind is {self.kind})")
        if "format" in given and (self.message is not None or self.lines is not None):
            raise ValueError("`format` does not apply when `message` or `lines` is given")
        return self


# --------------------------------------------------------------------------- content


def fit_text(line: str, size: int | None) -> str:
    """`line` padded with spaces or truncated (on a character boundary) to exactly `size` UTF-8 bytes."""
    if size is None:
        return line
    raw = line.encode("utf-8")
    if len(raw) == size:
        return line
    if len(raw) < size:
        return line + " " * (size - len(raw))
    cut = raw[:size].decode("utf-8", "ignore")
    return cut + " " * (size - len(cut.encode("utf-8")))


def fit_json(line: str, size: int | None) -> str:
    """Like `fit_text` for a JSON object ending in a plain ASCII string value: keeps it valid JSON if it can."""
    if size is None:
        return line
    assert line.endswith('"}')
    diff = size - len(line)
    if diff >= 0:
        return line[:-2] + " " * diff + '"}'
    value_start = line.rfind('"', 0, len(line) - 2) + 1
    if len(line) - 2 - value_start >= -diff:
        return line[: len(line) - 2 + diff] + '"}'
    return fit_text(line, size)


def _iso(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def _clf(second: int) -> str:
    t = time.gmtime(second)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


_SERVICES = ("checkout", "payments", "inventory", "search", "auth", "cart", "shipping", "catalog")
_ROUTES = (
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/cart",
    "/api/v1/products/{id}",
    "/api/v1/search",
    "/healthz",
    "/login",
    "/static/app.js",
)
_METHODS = ("GET", "GET", "GET", "POST", "PUT", "DELETE")
_USERS = ("-", "-", "-", "alice", "bob", "carol", "dave")
_LEVELS = ("INFO",) * 12 + ("DEBUG",) * 4 + ("WARN",) * 3 + ("ERROR",) * 1


def _app_messages(rnd: random.Random) -> tuple[str, str, str]:
    """(level, logger, message) of a plausible application event."""
    level = rnd.choice(_LEVELS)
    service = rnd.choice(_SERVICES)
    order, customer, ms = rnd.randint(10000, 99999), rnd.randint(100, 9999), rnd.randint(1, 900)
    if level == "ERROR":
        text = rnd.choice(
            (
                f"failed to charge order {order}: upstream timeout after {ms}ms",
                f"database connection lost while reading customer {customer}; retrying",
                f"unhandled exception in request handler for order {order}: KeyError sku",
            )
        )
    elif level == "WARN":
        text = rnd.choice(
            (
                f"slow query took {ms * 3}ms for customer {customer}",
                f"retrying request to {rnd.choice(_SERVICES)} (attempt {rnd.randint(2, 5)})",
                f"cache miss ratio high: {rnd.randint(30, 90)} percent",
            )
        )
    elif level == "DEBUG":
        text = rnd.choice(
            (
                f"cache hit for product {rnd.randint(1, 5000)}",
                f"acquired connection from pool in {rnd.randint(0, 5)}ms",
                f"parsed request body of {rnd.randint(50, 5000)} bytes",
            )
        )
    else:
        text = rnd.choice(
            (
                f"order {order} placed by customer {customer} in {ms}ms",
                f"user {customer} logged in from 10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}",
                f"shipped order {order} via {rnd.choice(('ups', 'dhl', 'fedex'))}",
                f"search for q={rnd.choice(('shoes', 'laptop', 'coffee', 'desk lamp'))} returned "
                f"{rnd.randint(0, 300)} results in {ms}ms",
            )
        )
    return level, f"{service}.{rnd.choice(('Service', 'Handler', 'Repository', 'Worker'))}", text


def _route(rnd: random.Random) -> str:
    return rnd.choice(_ROUTES).replace("{id}", str(rnd.randint(1, 99999)))


def _status(rnd: random.Random) -> int:
    return rnd.choice((200,) * 14 + (201, 204, 301, 304, 400, 401, 403, 404, 404, 500, 502, 503))


def make_templates(fmt: str, rnd: random.Random, hostname: str) -> list[str]:
    """`POOL_SIZE` message templates of a format; `_TS` marks where the timestamp goes."""
    out: list[str] = []
    for _ in range(POOL_SIZE):
        if fmt == "text":
            level, logger, text = _app_messages(rnd)
            out.append(f"{_TS} {level:<5} [worker-{rnd.randint(1, 16)}] {logger} - {text}")
        elif fmt == "json":
            level, logger, text = _app_messages(rnd)
            head = orjson.dumps(
                {
                    "time": "TS",
                    "level": level.lower(),
                    "service": logger.split(".")[0],
                    "logger": logger,
                    "request_id": f"{rnd.getrandbits(64):016x}",
                }
            ).decode()
            head = head.replace('"TS"', f'"{_TS}"')
            # `msg` goes last: fit_json pads or shortens its value to reach message_bytes.
            out.append(head[:-1] + ',"msg":' + orjson.dumps(text).decode() + "}")
        elif fmt == "apache_common":
            ip = f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
            out.append(
                f'{ip} - {rnd.choice(_USERS)} [{_TS}] "{rnd.choice(_METHODS)} {_route(rnd)} HTTP/1.1" '
                f"{_status(rnd)} {rnd.randint(0, 50000)}"
            )
        elif fmt == "syslog":
            severity = rnd.choice((6, 6, 6, 6, 5, 4, 3))
            facility = rnd.choice((1, 3, 16, 17))  # user, daemon, local0, local1
            app = rnd.choice(("sshd", "cron", "nginx", "app", "systemd", "kernel"))
            _level, _logger, text = _app_messages(rnd)
            out.append(
                f"<{facility * 8 + severity}>1 {_TS} {hostname} {app} {rnd.randint(100, 65000)} "
                f"ID{rnd.randint(1, 99)} - {text}"
            )
        else:  # pragma: no cover - the config model rejects other formats
            raise ValueError(f"unknown format {fmt!r}")
    return out


# --------------------------------------------------------------------------- the input


class Generator(Input):
    type_name: ClassVar[str] = "generator"
    description: ClassVar[str] = (
        "Generates synthetic logs, metrics or traces at a chosen rate, for testing and benchmarks."
    )
    Config: ClassVar[type[GeneratorConfig]] = GeneratorConfig
    emits: ClassVar[frozenset[str]] = frozenset(KINDS)

    config: GeneratorConfig

    def __init__(self, config: GeneratorConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.sequence = 0
        """Sequence number of the next record; also the number of events emitted so far."""
        self.acknowledged = 0
        """Every record before this sequence number is safe downstream (see collector/acks.py)."""
        self._acks = AckTracker(self._on_commit)
        self._checkpoint = ctx.checkpoint_file("checkpoint.json") if config.checkpoint else None
        self._saved = 0
        self._rnd = random.Random(config.seed)
        self._make: Callable[[int, int], Batch]
        self._pool_ext: list[Any] = []
        if config.kind == LOGS:
            self._setup_logs()
            self._make = self._make_logs
        elif config.kind == METRICS:
            self._setup_metrics()
            self._make = self._make_metrics
        else:
            self._setup_traces()
            self._make = self._make_traces

    @classmethod
    def emitted_kinds(cls, config: GeneratorConfig) -> frozenset[str]:
        return frozenset((config.kind,))

    # ----------------------------------------------------------------- logs

    def _setup_logs(self) -> None:
        cfg = self.config
        self._templates: list[str] | None = None
        self._rendered_second = -1
        if cfg.message is not None:
            self._set_pool([fit_text(cfg.message, cfg.message_bytes)])
        elif cfg.lines is not None:
            self._set_pool([fit_text(line, cfg.message_bytes) for line in cfg.lines])
        else:
            self._templates = make_templates(cfg.format, self._rnd, self.ctx.host.host)
            self._fit = fit_json if cfg.format == "json" else fit_text
            self._ts_text = _clf if cfg.format == "apache_common" else _iso
            self._render(int(time.time()))

    def _render(self, second: int) -> None:
        assert self._templates is not None
        stamp, size, fit = self._ts_text(second), self.config.message_bytes, self._fit
        self._set_pool([fit(t.replace(_TS, stamp), size) for t in self._templates])
        self._rendered_second = second

    def _set_pool(self, pool: list[str]) -> None:
        self.pool = pool
        n = len(pool)
        # Any batch's messages are the slice pool_ext[offset:offset + count] with offset < n.
        self._pool_ext = pool * math.ceil((n + self.config.batch_size) / n)
        lengths = [len(m.encode("utf-8")) for m in pool]
        self._prefix = [0]
        for length in lengths:
            self._prefix.append(self._prefix[-1] + length)

    def _span_bytes(self, offset: int, count: int) -> int:
        """Total message bytes of `count` pool entries starting at `offset` (< pool size), cycling."""
        pre, n = self._prefix, len(self.pool)
        full, rest = divmod(count, n)
        total = full * pre[n]
        end = offset + rest
        if end <= n:
            return total + pre[end] - pre[offset]
        return total + pre[n] - pre[offset] + pre[end - n]

    def _make_logs(self, start: int, count: int) -> Batch:
        ts = time.time()
        if self._templates is not None and int(ts) != self._rendered_second:
            self._render(int(ts))
        offset = start % len(self.pool)
        messages = self._pool_ext[offset : offset + count]
        records = [
            {"timestamp": ts, "message": m, "sequence": s}
            for m, s in zip(messages, range(start, start + count), strict=True)
        ]
        return Batch(LOGS, records, self._span_bytes(offset, count))

    # ----------------------------------------------------------------- metrics

    def _setup_metrics(self) -> None:
        rnd = self._rnd
        series: list[tuple[str, MetricType, Any, dict[str, str], str | None]] = []
        routes = ("/api/v1/orders", "/api/v1/cart", "/api/v1/search", "/login")
        queues = ("default", "priority", "bulk")
        for i in range(POOL_SIZE):
            route = routes[(i // 3) % len(routes)]
            pick = i % 3
            if pick == 0:
                tags = {"route": route, "status": str(_status(rnd))}
                series.append(("generator.requests", "counter", float(rnd.randint(1, 20)), tags, None))
            elif pick == 1:
                tags = {"queue": queues[(i // 3) % len(queues)]}
                series.append(("generator.queue_depth", "gauge", float(rnd.randint(0, 500)), tags, None))
            else:
                samples = [round(rnd.lognormvariate(3.0, 0.8), 2) for _ in range(rnd.randint(1, 5))]
                series.append(("generator.latency_ms", "distribution", samples, {"route": route}, "Milliseconds"))
        self._pool_ext = series * math.ceil((len(series) + self.config.batch_size) / len(series))
        self._metric_nbytes = max(
            1, sum(len(orjson.dumps(Metric(n, t, v, g, 0.0, u).to_dict())) for n, t, v, g, u in series) // len(series)
        )

    def _make_metrics(self, start: int, count: int) -> Batch:
        ts = time.time()
        offset = start % POOL_SIZE
        # Fresh tags and value lists per record: a Metric's own containers are not shared between records.
        records = [
            Metric(n, t, v[:] if t == "distribution" else v, g.copy(), ts, u)
            for n, t, v, g, u in self._pool_ext[offset : offset + count]
        ]
        return Batch(METRICS, records, count * self._metric_nbytes)

    # ----------------------------------------------------------------- traces

    def _setup_traces(self) -> None:
        rnd = self._rnd
        shapes: list[tuple[str, float, dict[str, Any]]] = []
        for _ in range(POOL_SIZE):
            service, method = rnd.choice(_SERVICES), rnd.choice(_METHODS)
            url = f"https://{service}.example.internal{_route(rnd)}"
            shapes.append(
                (
                    service,
                    round(rnd.lognormvariate(-3.5, 0.9), 6),  # seconds, median ~30 ms
                    {"request": {"method": method, "url": url}, "response": {"status": _status(rnd)}},
                )
            )
        self._pool_ext = shapes * math.ceil((len(shapes) + self.config.batch_size) / len(shapes))
        sample = {
            "trace_id": "1-00000000-" + "0" * 24,
            "id": "0" * 16,
            "name": "checkout",
            "start_time": 1700000000.123456,
            "end_time": 1700000000.223456,
            "http": shapes[0][2],
            "annotations": {"sequence": 1000000},
        }
        self._trace_nbytes = len(orjson.dumps(sample))

    def _make_traces(self, start: int, count: int) -> Batch:
        ts = time.time()
        offset = start % POOL_SIZE
        epoch = f"1-{int(ts):08x}-"
        ids = os.urandom(20 * count).hex()  # 24 hex digits of trace id + 16 of segment id per record
        records = [
            {
                "trace_id": epoch + ids[i : i + 24],
                "id": ids[i + 24 : i + 40],
                "name": name,
                "start_time": ts - duration,
                "end_time": ts,
                "http": http,
                "annotations": {"sequence": s},
            }
            for (name, duration, http), i, s in zip(
                self._pool_ext[offset : offset + count],
                range(0, 40 * count, 40),
                range(start, start + count),
                strict=True,
            )
        ]
        return Batch(TRACES, records, count * self._trace_nbytes)

    # ----------------------------------------------------------------- the loop

    def make_batch(self, count: int) -> Batch:
        """The next batch of `count` records (advances `sequence`). Synchronous; used by `run` and benchmarks."""
        batch = self._make(self.sequence, count)
        self.sequence += count
        batch.ack = self._acks.token(self.sequence)
        return batch

    def counters(self) -> dict[str, float]:
        return {"acknowledged_sequence": self.acknowledged}

    def _on_commit(self, position: int) -> None:
        self.acknowledged = position

    async def start(self) -> None:
        if self._checkpoint is None:
            return
        try:
            state = await asyncio.to_thread(self._checkpoint.load)
        except CheckpointError as exc:
            self.log.error("generator checkpoint unreadable; starting from sequence 0", extra=kv(error=str(exc)))
            state = None
        if state is not None:
            self.sequence = self.acknowledged = self._saved = int(state.get("next_sequence", 0))

    async def stop(self) -> None:
        await self._save_checkpoint()

    async def drained(self) -> None:
        await self._save_checkpoint()

    async def _save_checkpoint(self) -> None:
        if self._checkpoint is not None and self.acknowledged != self._saved:
            position = self.acknowledged
            await asyncio.to_thread(self._checkpoint.save, {"next_sequence": position})
            self._saved = position

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL)
            await self._save_checkpoint()

    async def run(self, ctx: InputContext) -> None:
        cfg = self.config
        saver = asyncio.create_task(self._checkpoint_loop()) if self._checkpoint is not None else None
        try:
            if cfg.rate > 0:
                await self._run_paced(ctx)
            else:
                await self._run_unpaced(ctx)
        finally:
            if saver is not None:
                saver.cancel()
        if cfg.count is not None and self.sequence >= cfg.count:
            self.log.info("generator finished", extra=kv(component=self.ctx.name, events=self.sequence))

    def _remaining(self) -> int | None:
        count = self.config.count
        return None if count is None else count - self.sequence

    async def _run_unpaced(self, ctx: InputContext) -> None:
        batch_size, stopping, emit, make = self.config.batch_size, ctx.stopping, ctx.emit, self.make_batch
        count = self.config.count
        while not stopping.is_set():
            n = batch_size if count is None else min(batch_size, count - self.sequence)
            if n <= 0:
                return
            await emit(make(n))
            # emit() only suspends when a channel is full; let the rest of the loop run every batch.
            await asyncio.sleep(0)

    async def _run_paced(self, ctx: InputContext) -> None:
        cfg = self.config
        rate, batch_size, stopping, emit, make = cfg.rate, cfg.batch_size, ctx.stopping, ctx.emit, self.make_batch
        # Emit about PACING_TICK seconds' worth per batch (at least one event, at most a full batch);
        # the bucket holds two batches at most, so a stall (backpressure) is not followed by a long burst.
        want_per_batch = min(batch_size, max(1, int(rate * PACING_TICK)))
        capacity = float(2 * batch_size)
        tokens, last = 0.0, time.monotonic()
        while not stopping.is_set():
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                return
            want = want_per_batch if remaining is None else min(want_per_batch, remaining)
            now = time.monotonic()
            tokens = min(capacity, tokens + (now - last) * rate)
            last = now
            if tokens < want:
                if await ctx.sleep((want - tokens) / rate):
                    return
                continue
            n = min(int(tokens), batch_size) if remaining is None else min(int(tokens), batch_size, remaining)
            tokens -= n
            await emit(make(n))
            await asyncio.sleep(0)
