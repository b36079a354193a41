"""The self-observability API: /healthz, /readyz, /metrics, /status.

- `/healthz` (liveness): 200 while the event loop answers and no component is
  stuck (a restart loop, a wedged buffer: `collector.health`); else 503 with
  the problems.
- `/readyz` (readiness): 200 once the topology runs, until shutdown begins,
  while every output can accept data; else 503 with the reason.
- `/metrics`: Prometheus text format, from the injected registry.
- `/status`: JSON: version, uptime, config file, and each component with its
  section, type, kinds, upstreams, state and counters (what `collector top` shows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from collector import __version__
from collector.defaults import HEALTH_PATH, METRICS_PATH, READY_PATH, STATUS_PATH


class ApiServer:
    def __init__(
        self,
        registry: CollectorRegistry,
        status: Callable[[], dict[str, Any]],
        readiness: Callable[[], tuple[bool, str]],
        liveness: Callable[[], tuple[bool, list[str]]] | None = None,
    ) -> None:
        self._registry = registry
        self._status = status
        self._readiness = readiness
        self._liveness = liveness
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(HEALTH_PATH, self._healthz)
        app.router.add_get(READY_PATH, self._readyz)
        app.router.add_get(METRICS_PATH, self._metrics)
        app.router.add_get(STATUS_PATH, self._status_handler)
        return app

    async def start(self, host: str, port: int) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        server = site._server  # aiohttp exposes the bound sockets only here
        sockets = getattr(server, "sockets", None) or []
        self.bound = sockets[0].getsockname()[:2] if sockets else (host, port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
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
