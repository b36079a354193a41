"""aiohttp servers the search and http output tests run: a scripted endpoint and a seeded `_bulk` fault proxy.

- `Endpoint`: keeps every request (method, path, headers, body as received and
  decompressed) and answers with `answer(request) -> (status, headers, body)`.
- `FaultProxy`: in front of a real `_bulk` (osmem-server, noida-db). For each
  request, seeded: a whole-request 429 or 503; or, per item, a 429 or 500
  without forwarding it; or forwarding it and then answering 500 anyway (the
  answer lost: the resend must be a 409 on our own `_id`, not a second copy).
  The items forwarded keep their order and the answer is merged back in order.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from collector.testing import free_port


@dataclass
class Seen:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    raw: bytes
    body: bytes


Answer = tuple[int, dict[str, str], bytes]


def bulk_ok(seen: Seen) -> Answer:
    count = seen.body.count(b"\n") // 2
    return 200, {}, json.dumps({"errors": False, "items": [{"create": {"status": 201}}] * count}).encode()


class _Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def _start(self, handler: Callable[[web.Request], Any], ssl_context: Any = None) -> None:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handler)
        self._runner = web.AppRunner(app, access_log=None, auto_decompress=False)  # see the bytes as sent
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=ssl_context).start()
        if ssl_context is not None:
            self.url = f"https://localhost:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class Endpoint(_Server):
    def __init__(self, answer: Callable[[Seen], Answer] = bulk_ok) -> None:
        super().__init__()
        self.answer = answer
        self.seen: list[Seen] = []

    async def start(self, ssl_context: Any = None) -> Endpoint:
        await self._start(self._handle, ssl_context)
        return self

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = gzip.decompress(raw) if request.headers.get("Content-Encoding") == "gzip" else raw
        seen = Seen(request.method, request.path, request.query_string, dict(request.headers), raw, body)
        self.seen.append(seen)
        status, headers, payload = self.answer(seen)
        return web.Response(status=status, headers=headers, body=payload, content_type="application/json")


@dataclass
class FaultCounts:
    whole: int = 0
    item_failed: int = 0
    answer_lost: int = 0
    items_seen: int = 0
    bodies: list[bytes] = field(default_factory=list)


class FaultProxy(_Server):
    def __init__(
        self, upstream: str, seed: int, rate: float = 0.3, throttle_rate: float = 0.005, whole_rate: float = 0.25
    ) -> None:
        """`rate`: share of items failed with 500 or whose answer is lost; `whole_rate`: share of requests
        answered 503 or 429 as a whole; `throttle_rate`: share of items answered 429 (kept low: a 429
        anywhere in an answer slows the whole output down, as it should)."""
        super().__init__()
        self.upstream = upstream
        self.random = random.Random(seed)
        self.rate = rate
        self.throttle_rate = throttle_rate
        self.whole_rate = whole_rate
        self.counts = FaultCounts()
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> FaultProxy:
        self._session = aiohttp.ClientSession()
        await self._start(self._handle)
        return self

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._session is not None
        raw = await request.read()
        body = gzip.decompress(raw) if request.headers.get("Content-Encoding") == "gzip" else raw
        if request.path != "/_bulk":
            async with self._session.request(request.method, self.upstream + request.path_qs, data=body) as up:
                return web.Response(status=up.status, body=await up.read(), content_type="application/json")
        assert body.endswith(b"\n"), "a _bulk body must end with a newline"
        rnd = self.random
        if rnd.random() < self.whole_rate:
            self.counts.whole += 1
            status = 429 if rnd.random() < 0.2 else 503
            return web.Response(status=status, headers={"Retry-After": "0"}, text='{"error":"busy"}')
        lines = body.split(b"\n")[:-1]
        pairs = [lines[i : i + 2] for i in range(0, len(lines), 2)]
        self.counts.items_seen += len(pairs)
        plan = []  # per item: "fail429", "fail500", "lost", "pass"
        for _ in pairs:
            roll = rnd.random()
            plan.append(
                "fail429"
                if roll < self.rate / 3
                else "fail500"
                if roll < 2 * self.rate / 3
                else "lost"
                if roll < self.rate
                else "pass"
            )
        forward = [p for p, what in zip(pairs, plan, strict=True) if what in ("pass", "lost")]
        answers: list[Any] = []
        if forward:
            payload = b"".join(a + b"\n" + d + b"\n" for a, d in forward)
            async with self._session.post(
                self.upstream + "/_bulk", data=payload, headers={"Content-Type": "application/x-ndjson"}
            ) as up:
                assert up.status == 200, await up.text()
                answers = list((await up.json())["items"])
        items = []
        for what in plan:
            if what in ("pass", "lost"):
                item = answers.pop(0)
                if what == "lost":
                    self.counts.answer_lost += 1
                    item = {"create": {"status": 500, "error": {"type": "lost", "reason": "answer lost"}}}
                items.append(item)
            else:
                self.counts.item_failed += 1
                status = 429 if what == "fail429" else 500
                items.append({"create": {"status": status, "error": {"type": "fault", "reason": what}}})
        return web.json_response({"errors": True, "items": items})
