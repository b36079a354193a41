"""`prometheus_exporter` output: serves the metrics it receives on an HTTP endpoint for Prometheus to scrape.

The non-AWS path for metrics. Writing a batch only folds its points into the
exposition state (`exposition.py`, synchronous, no I/O); the HTTP
server (aiohttp, bound in `start`) renders that state on every scrape through a
prometheus_client registry of its own, in OpenMetrics (exemplars included) when the scraper's
`Accept` asks for it, as Prometheus does, else in the classic text format. Scrapes never wait for writes, nor
writes for scrapes: both run on the event loop, one at a time.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import CollectorRegistry
from pydantic import Field, field_validator

from collector.accepting import HTTP_SHUTDOWN_TIMEOUT, stop_site
from collector.api import ComponentContext, Output, OutputConfig
from collector.config.model import parse_listen
from collector.events import METRICS, Batch
from collector.log import kv
from collector.units import Duration
from collector_plugins.outputs.prometheus_exporter.exposition import Exposition


class PrometheusExporterConfig(OutputConfig):
    type: Literal["prometheus_exporter"] = Field(
        description="Serves metrics for Prometheus to scrape.", examples=["prometheus_exporter"]
    )
    listen: str = Field(
        "127.0.0.1:9464",
        description="HOST:PORT of the HTTP endpoint (0.0.0.0 to let a Prometheus server on another host scrape it).",
        examples=["127.0.0.1:9464", "0.0.0.0:9464"],
    )
    path: str = Field("/metrics", description="The HTTP path scraped.", examples=["/metrics"])
    expire_after: Duration = Field(
        300.0,
        description="A series not updated for this long is no longer exposed.",
        examples=["5m", "1h"],
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path must start with /")
        return value

    @field_validator("expire_after")
    @classmethod
    def _check_expiry(cls, value: float) -> float:
        if value < 1:
            raise ValueError("expire_after must be at least 1s")
        return value


class PrometheusExporter(Output):
    type_name: ClassVar[str] = "prometheus_exporter"
    description: ClassVar[str] = "Serves the metrics it receives in the Prometheus text format over HTTP."
    Config: ClassVar[type[PrometheusExporterConfig]] = PrometheusExporterConfig
    accepts: ClassVar[frozenset[str]] = frozenset({METRICS})

    config: PrometheusExporterConfig

    def __init__(self, config: PrometheusExporterConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.exposition = Exposition(config.expire_after)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.exposition)
        self._runner: web.AppRunner | None = None
        self.bound: tuple[str, int] | None = None
        self._sockets: list[Any] = []
        """The bound address (after `start`): tests listen on port 0."""
        self.scrapes = 0
        self.points = 0

    def counters(self) -> dict[str, float]:
        return {
            "points": self.points,
            "scrapes": self.scrapes,
            "series": self.exposition.series_count(),
            "type_conflicts": self.exposition.type_conflicts,
            "invalid_points": self.exposition.invalid,
        }

    async def start(self) -> None:
        host, port = parse_listen(self.config.listen)
        app = web.Application()
        app.router.add_get(self.config.path, self._scrape)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=HTTP_SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self._runner.cleanup()
            self._runner = None
            raise
        self._sockets = list(getattr(site._server, "sockets", None) or [])  # aiohttp exposes them only here
        self.bound = self._sockets[0].getsockname()[:2] if self._sockets else (host, port)
        self.log.info("serving metrics for Prometheus", extra=kv(component=self.ctx.name, listen=self.config.listen))

    async def stop(self) -> None:
        if self._runner is not None:
            await stop_site(self._runner, self._sockets)
            self._runner = None

    async def write(self, batch: Batch) -> None:
        self.exposition.add(batch.records)
        self.points += len(batch.records)

    async def _scrape(self, request: web.Request) -> web.Response:
        self.scrapes += 1
        # OpenMetrics (with exemplars) for a scraper that asks for it, as Prometheus does; the text format otherwise
        body, content_type = b"", ""
        if "application/openmetrics-text" in request.headers.get("Accept", ""):
            try:
                body, content_type = openmetrics.generate_latest(self.registry), openmetrics.CONTENT_TYPE_LATEST
            except ValueError as exc:  # something OpenMetrics cannot say: the classic format still can
                self.log.warning(
                    "OpenMetrics exposition failed; serving the text format",
                    extra=kv(component=self.ctx.name, error=str(exc)),
                )
        if not content_type:
            body, content_type = generate_latest(self.registry), CONTENT_TYPE_LATEST
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response
