"""The self-observability API: /healthz, /readyz, /metrics, /status.

- `/healthz` (liveness): 200 while the event loop answers and no component is
  stuck (a restart loop, a wedged buffer: `collector.health`); else 503 with
  the problems.
- `/readyz` (readiness): 200 once the topology runs, until shutdown begins,
  while every output can accept data; else 503 with the reason.
- `/metrics`: Prometheus text format, from the injected registry.
- `/status`: JSON: version, uptime, config file, and each component with its
  section, type, kinds, upstreams, state and counters (what `collector top` shows).
- `/tap?component=NAME[&component=...]&rate=N&sample=F`: JSON lines of the
  records those components emit, sampled and rate limited, until the client
  goes away or the components are removed (collector/tap.py; `collector tap`).
  404 if a name (or glob) matches no component, 400 for a bad parameter.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from collector import __version__
from collector.accepting import HTTP_SHUTDOWN_TIMEOUT, stop_site
from collector.defaults import HEALTH_PATH, METRICS_PATH, READY_PATH, STATUS_PATH, TAP_PATH
from collector.tap import Tap, TapHub, encode_line

# How often a tap's stream checks that its client and its components are still there.
TAP_CHECK_SECONDS = 0.5


class ApiServer:
    def __init__(
        self,
        registry: CollectorRegistry,
        status: Callable[[], dict[str, Any]],
        readiness: Callable[[], tuple[bool, str]],
        liveness: Callable[[], tuple[bool, list[str]]] | None = None,
        taps: TapHub | None = None,
    ) -> None:
        self._taps = taps
        self._registry = registry
        self._status = status
        self._readiness = readiness
        self._liveness = liveness
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None
        self._sockets: list[Any] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(HEALTH_PATH, self._healthz)
        app.router.add_get(READY_PATH, self._readyz)
        app.router.add_get(METRICS_PATH, self._metrics)
        app.router.add_get(STATUS_PATH, self._status_handler)
        if self._taps is not None:
            app.router.add_get(TAP_PATH, self._tap_handler)
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        server = site._server  # aiohttp exposes the bound sockets only here
        self._sockets = list(getattr(server, "sockets", None) or [])
        self.bound = self._sockets[0].getsockname()[:2] if self._sockets else (host, port)

    async def stop(self) -> None:
        if self._taps is not None:
            self._taps.end_all("collector shutting down")  # else open taps hold the server's shutdown
        if self._runner is not None:
            await stop_site(self._runner, self._sockets)
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, problems = self._liveness() if self._liveness is not None else (True, [])
        if healthy:
            return web.json_response({"status": "ok", "version": __version__})
        body = {"status": "unhealthy", "problems": problems, "version": __version__}
        return web.json_response(body, status=503)

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, reason = self._readiness()
        return web.json_response({"ready": ready, "reason": reason}, status=200 if ready else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self._registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def _status_handler(self, request: web.Request) -> web.Response:
        status = self._status()
        status["time"] = time.time()
        return web.json_response(status)

    async def _tap_handler(self, request: web.Request) -> web.StreamResponse:
        hub = self._taps
        assert hub is not None
        patterns = request.query.getall("component", [])
        try:
            rate = float(request.query.get("rate", "100"))
            sample = float(request.query.get("sample", "1"))
        except ValueError:
            return web.json_response({"error": "rate and sample must be numbers"}, status=400)
        if not patterns:
            return web.json_response({"error": "give at least one component=NAME"}, status=400)
        if not (0 < rate < float("inf") and 0 < sample <= 1):
            return web.json_response({"error": "rate must be > 0 and sample in (0, 1]"}, status=400)
        names, unknown = hub.match(patterns)
        if unknown:
            known = sorted(hub.runtime.graph.components)
            body = {"error": f"no component matches {', '.join(unknown)}", "components": known}
            return web.json_response(body, status=404)
        tap = Tap(rate, sample)
        hub.attach(tap, names)
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        try:
            await response.prepare(request)
            while True:
                try:
                    await asyncio.wait_for(tap.ready.wait(), TAP_CHECK_SECONDS)
                except TimeoutError:
                    pass
                tap.ready.clear()
                hub.check(tap)
                transport = request.transport
                if transport is None or transport.is_closing():
                    return response  # the client went away
                lines = [encode_line(*item) for item in tap.queue]
                tap.queue.clear()
                if lines:
                    await response.write(b"".join(lines))
                if tap.ended is not None:
                    end = {"tap": "end", "reason": tap.ended, "rate_limited": tap.rate_limited, "dropped": tap.dropped}
                    await response.write(json.dumps(end).encode() + b"\n")
                    await response.write_eof()
                    return response
        except ConnectionResetError:
            return response
        finally:
            hub.detach(tap)
