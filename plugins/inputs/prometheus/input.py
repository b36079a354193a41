"""`prometheus` input: scrapes Prometheus endpoints (static targets and file-based discovery).

Every `interval` all targets are scraped at once (one aiohttp session, a
`timeout` each); each response (OpenMetrics when the target offers it, for its exemplars, else
the classic text format) is parsed with prometheus_client's parser of that format
and converted with each type's meaning kept (`convert.py`). Per
target it also emits, like Prometheus itself, `up` (1 or 0) and
`scrape_duration_seconds`, tagged `job` and `instance`. One batch per round.

Targets come from `targets` and from `file_sd` files in Prometheus' file_sd
format (JSON or YAML: a list of `{"targets": [...], "labels": {...}}`), read
again whenever a file changes; a file that does not parse keeps its previous
targets (logged once per change). A response larger than `max_body_bytes`, or
with more than `sample_limit` samples, fails that scrape (`up` 0), as
Prometheus' own limits do.
"""

from __future__ import annotations

import asyncio
import glob
import os
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import aiohttp
import orjson
import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.api import ComponentContext, Input, InputConfig, InputContext
from collector.config.messages import HINT_SEPARATOR
from collector.config.secrets import SECRET
from collector.events import METRICS, Metric
from collector.log import RepeatLimiter, kv
from collector.units import Duration, Size
from collector_plugins.common.metrics.batch import metric_batch
from collector_plugins.inputs.prometheus.convert import Deltas

# OpenMetrics first (it carries exemplars), the classic text format otherwise, as Prometheus itself asks.
ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
OPENMETRICS = "application/openmetrics-text"


class BasicAuth(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(description="User name.", examples=["prometheus"])
    password: str | None = Field(
        None,
        description="Password (better: `password_file`).",
        examples=["${PROM_PASS}"],
        json_schema_extra=SECRET,
        repr=False,
    )
    password_file: str | None = Field(None, description="File holding the password.", examples=["/etc/prom/pass"])

    @model_validator(mode="after")
    def _one_password(self) -> BasicAuth:
        if (self.password is None) == (self.password_file is None):
            raise ValueError(
                f"give exactly one of password and password_file{HINT_SEPARATOR}password_file keeps the secret "
                "out of the config file"
            )
        return self


class PrometheusConfig(InputConfig):
    type: Literal["prometheus"] = Field(description="Scrapes Prometheus endpoints.", examples=["prometheus"])
    targets: list[str] = Field(
        default_factory=list,
        description="Static targets: `HOST:PORT` (with `scheme` and `metrics_path`) or full URLs.",
        examples=[["127.0.0.1:9100", "http://127.0.0.1:8080/custom/metrics"]],
    )
    file_sd: list[str] = Field(
        default_factory=list,
        description=(
            "Prometheus file_sd files or glob patterns (JSON or YAML lists of `{targets, labels}`), re-read when "
            "they change."
        ),
        examples=[["/etc/collector/targets/*.json"]],
    )
    job: str | None = Field(None, description="The `job` tag; default: the component's name.", examples=["node"])
    interval: Duration = Field(60.0, description="Time between scrapes.", examples=["60s", "15s"])
    timeout: Duration | None = Field(
        None, description="How long one scrape may take; default: 10s, or `interval` if shorter.", examples=["10s"]
    )
    scheme: Literal["http", "https"] = Field("http", description="For `HOST:PORT` targets.", examples=["http"])
    metrics_path: str = Field("/metrics", description="For `HOST:PORT` targets.", examples=["/metrics"])
    basic_auth: BasicAuth | None = Field(
        None, description="HTTP basic authentication.", examples=[{"username": "u", "password_file": "/run/pw"}]
    )
    bearer_token: str | None = Field(
        None,
        description="A bearer token (better: the file).",
        examples=["${TOKEN}"],
        json_schema_extra=SECRET,
        repr=False,
    )
    bearer_token_file: str | None = Field(
        None,
        description="File holding a bearer token, read at every scrape (rotated tokens work).",
        examples=["/var/run/secrets/kubernetes.io/serviceaccount/token"],
    )
    max_body_bytes: Size = Field(
        10 * 1024 * 1024, description="Largest response accepted; a larger one fails the scrape.", examples=["10MiB"]
    )
    sample_limit: int = Field(
        50_000, ge=1, description="Most samples per scrape; more fails the scrape (`up` 0).", examples=[50000]
    )

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, value: list[str]) -> list[str]:
        for target in value:
            _split_target(target)
        return value

    @field_validator("metrics_path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("metrics_path must start with /")
        return value

    @model_validator(mode="after")
    def _check(self) -> PrometheusConfig:
        if self.timeout is not None and self.timeout > self.interval:
            raise ValueError(
                f"timeout cannot be longer than interval{HINT_SEPARATOR}lower timeout or raise interval: a scrape "
                "must end before the next one starts"
            )
        if self.bearer_token is not None and self.bearer_token_file is not None:
            raise ValueError(f"give bearer_token or bearer_token_file, not both{HINT_SEPARATOR}remove one of them")
        if self.basic_auth is not None and (self.bearer_token or self.bearer_token_file):
            raise ValueError(
                f"give basic_auth or a bearer token, not both{HINT_SEPARATOR}a target takes one kind of "
                "credentials: remove the other"
            )
        return self

    @property
    def scrape_timeout(self) -> float:
        return self.timeout if self.timeout is not None else min(10.0, self.interval)


def _split_target(target: str) -> tuple[str | None, str, str | None]:
    """(scheme, host:port, path) of a target; ValueError if it is neither HOST:PORT nor a URL."""
    if "://" in target:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"target {target!r} is not an http(s) URL")
        path = parts.path or None
        if parts.query:
            path = (path or "/") + "?" + parts.query
        return parts.scheme, parts.netloc, path
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"target {target!r} is not HOST:PORT or a URL")
    return None, target, None


@dataclass
class Target:
    url: str
    instance: str
    labels: dict[str, str] = field(default_factory=dict)


class PrometheusInput(Input):
    type_name: ClassVar[str] = "prometheus"
    description: ClassVar[str] = "Scrapes Prometheus endpoints (static and file-discovered targets) into metrics."
    Config: ClassVar[type[PrometheusConfig]] = PrometheusConfig
    emits: ClassVar[frozenset[str]] = frozenset((METRICS,))

    config: PrometheusConfig

    def __init__(self, config: PrometheusConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.job = config.job or ctx.name
        self._deltas: dict[str, Deltas] = {}
        self._files: dict[str, tuple[float, list[Target]]] = {}
        self._limiter = RepeatLimiter(interval=300.0)
        self.scrapes = 0
        self.failed_scrapes = 0
        self.samples = 0

    def counters(self) -> dict[str, float]:
        return {"scrapes": self.scrapes, "failed_scrapes": self.failed_scrapes, "samples": self.samples}

    # ----------------------------------------------------------------- targets

    def targets(self) -> list[Target]:
        """Static targets plus those of the file_sd files (re-read when their modification time changes)."""
        out = [self._target(t, {}) for t in self.config.targets]
        for pattern in self.config.file_sd:
            paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            for path in paths:
                out.extend(self._file_targets(path))
        unique: dict[str, Target] = {}
        for target in out:
            unique.setdefault(target.url, target)
        return list(unique.values())

    def _target(self, text: str, labels: dict[str, str]) -> Target:
        scheme, netloc, path = _split_target(text)
        url = f"{scheme or self.config.scheme}://{netloc}{path or self.config.metrics_path}"
        return Target(url, netloc, labels)

    def _file_targets(self, path: str) -> list[Target]:
        try:
            mtime = os.stat(path).st_mtime
        except OSError as exc:
            self._warn(("file_sd", path, "missing"), "file_sd file cannot be read", path=path, error=str(exc))
            return self._files.get(path, (0.0, []))[1]
        cached = self._files.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        try:
            with open(path, "rb") as f:
                raw = f.read()
            groups = orjson.loads(raw) if path.endswith(".json") else yaml.safe_load(raw)
            targets: list[Target] = []
            for group in groups or []:
                labels = {str(k): str(v) for k, v in (group.get("labels") or {}).items()}
                targets.extend(self._target(str(t), labels) for t in group.get("targets") or [])
        except (ValueError, TypeError, AttributeError, yaml.YAMLError, orjson.JSONDecodeError) as exc:
            self._warn(
                ("file_sd", path, str(mtime)),
                "file_sd file does not parse; keeping its previous targets",
                path=path,
                error=str(exc),
            )
            return cached[1] if cached is not None else []
        self._files[path] = (mtime, targets)
        return targets

    # ----------------------------------------------------------------- the loop

    async def run(self, ctx: InputContext) -> None:
        timeout = aiohttp.ClientTimeout(total=self.config.scrape_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                started = time.monotonic()
                metrics = await self.scrape_all(session)
                if metrics:
                    await ctx.emit(metric_batch(metrics))
                if await ctx.sleep(max(0.0, self.config.interval - (time.monotonic() - started))):
                    return

    async def scrape_all(self, session: aiohttp.ClientSession) -> list[Metric]:
        targets = self.targets()
        live = {t.url for t in targets}
        self._deltas = {url: d for url, d in self._deltas.items() if url in live}
        results = await asyncio.gather(*(self.scrape(session, t) for t in targets))
        return [m for result in results for m in result]

    async def scrape(self, session: aiohttp.ClientSession, target: Target) -> list[Metric]:
        tags = {**target.labels, "job": self.job, "instance": target.instance}
        now = time.time()
        started = time.perf_counter()
        self.scrapes += 1
        try:
            text, content_type = await self._fetch(session, target)
            parse = openmetrics_families if content_type.startswith(OPENMETRICS) else text_string_to_metric_families
            families = list(parse(text))
            samples = sum(len(f.samples) for f in families)
            if samples > self.config.sample_limit:
                raise ValueError(f"{samples} samples, more than sample_limit {self.config.sample_limit}")
            deltas = self._deltas.setdefault(target.url, Deltas())
            metrics = deltas.convert(families, tags, now, self.config.interval)
            up = 1.0
            self.samples += samples
        except Exception as exc:  # any failure of one target: up 0, logged, the other targets unaffected
            self.failed_scrapes += 1
            self._warn(
                ("scrape", target.url, type(exc).__name__),
                "scrape failed",
                target=target.url,
                error=f"{type(exc).__name__}: {exc}",
            )
            metrics, up = [], 0.0
        duration = time.perf_counter() - started
        metrics.append(Metric("up", "gauge", up, dict(tags), now, None, self.config.interval))
        metrics.append(
            Metric("scrape_duration_seconds", "gauge", duration, dict(tags), now, "Seconds", self.config.interval)
        )
        return metrics

    async def _fetch(self, session: aiohttp.ClientSession, target: Target) -> tuple[str, str]:
        """The response body and its content type."""
        cfg = self.config
        headers: dict[str, str] = {"Accept": ACCEPT}
        if cfg.basic_auth is not None:
            password = cfg.basic_auth.password
            if cfg.basic_auth.password_file is not None:
                password = await asyncio.to_thread(_read_secret, cfg.basic_auth.password_file)
            headers["Authorization"] = aiohttp.encode_basic_auth(cfg.basic_auth.username, password or "")
        token = cfg.bearer_token
        if cfg.bearer_token_file is not None:
            token = await asyncio.to_thread(_read_secret, cfg.bearer_token_file)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with session.get(target.url, headers=headers) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            content_type = response.headers.get("Content-Type", "").strip().lower()
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body.extend(chunk)
                if len(body) > cfg.max_body_bytes:
                    raise ValueError(f"response larger than max_body_bytes ({cfg.max_body_bytes})")
        return body.decode("utf-8", "replace"), content_type

    def _warn(self, key: tuple[str, ...], message: str, **fields: Any) -> None:
        now, _, suppressed = self._limiter.check(*key)
        if now:
            if suppressed:
                fields["repeats_suppressed"] = suppressed
            self.log.warning(message, extra=kv(component=self.ctx.name, **fields))


def _read_secret(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()
