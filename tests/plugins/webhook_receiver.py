"""A real aiohttp server on loopback that takes webhook POSTs, in a thread of its own.

`failure_rate` of the requests (seeded) fail in one of the ways receivers fail: HTTP 500, 503,
429 with Retry-After, or a connection closed without an answer. Usable from synchronous tests
(e2e: the collector is another process) and from async ones (its loop is not the test's).
"""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import orjson
from aiohttp import web

from collector.testing import free_port, wait_for_sync


class WebhookReceiver:
    def __init__(self, failure_rate: float = 0.0, seed: int = 0, status: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.failure_rate = failure_rate
        self.status = status  # answer every request with this status instead
        self.random = random.Random(seed)
        self.received: list[Any] = []  # bodies of the requests answered 200
        self.headers: list[dict[str, str]] = []
        self.failures = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.status is not None:
            return web.Response(status=self.status)
        if self.random.random() < self.failure_rate:
            self.failures += 1
            way = self.random.randrange(4)
            if way == 0:
                return web.Response(status=500)
            if way == 1:
                return web.Response(status=503)
            if way == 2:
                return web.Response(status=429, headers={"Retry-After": "0"})
            assert request.transport is not None
            request.transport.close()  # no answer at all
            return web.Response(status=500)
        self.received.append(orjson.loads(body))
        self.headers.append(dict(request.headers))
        return web.Response(status=200, text="ok")

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def start(self) -> WebhookReceiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def wait_for(self, count: int, timeout: float = 30) -> None:
        wait_for_sync(lambda: len(self.received) >= count, timeout=timeout)
