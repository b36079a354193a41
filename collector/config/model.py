"""The top level of the config file: global settings and the three component sections."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from collector.defaults import API_LISTEN, DATA_DIR, SHUTDOWN_GRACE_SECONDS
from collector.units import Duration, Size


def parse_listen(value: str) -> tuple[str, int]:
    """`127.0.0.1:8734` or `[::1]:8734` -> (host, port)."""
    text = value.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"invalid address {value!r}: use host:port, e.g. 127.0.0.1:8734")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    host = host.strip("[]") or "127.0.0.1"
    return host, port


class HealthSettings(BaseModel):
    """What /healthz and /readyz call unhealthy and not ready (see docs/operations.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    restart_limit: int = Field(
        5,
        ge=1,
        description="/healthz fails while a component was restarted this many times within `restart_window` "
        "(a restart loop).",
        examples=[5],
    )
    restart_window: Duration = Field(300.0, gt=0, description="See `restart_limit`.", examples=["5m"])
    wedged_after: Duration = Field(
        300.0,
        gt=0,
        description="/healthz fails while an output's buffer has refused data this long with nothing left "
        "to deliver (wedged: waiting will not free it).",
        examples=["5m"],
    )
    full_after: Duration = Field(
        10.0,
        ge=0,
        description="/readyz fails while an output's buffer has been full this long (a buffer whose disk "
        "refuses writes makes it fail at once).",
        examples=["10s"],
    )


class ApiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Serve /healthz, /readyz, /metrics and /status.", examples=[True])
    listen: str = Field(
        API_LISTEN,
        description="host:port of the self-observability API. Loopback by default; use 0.0.0.0 only "
        "where a probe must reach it from outside (a Kubernetes pod).",
        examples=[API_LISTEN],
    )
    health: HealthSettings = Field(
        HealthSettings(),
        description="When /healthz and /readyz fail.",
        examples=[{"restart_limit": 5, "restart_window": "5m", "wedged_after": "5m", "full_after": "10s"}],
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        parse_listen(value)
        return value


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="The daemon's own log level.", examples=["info"]
    )
    format: Literal["logfmt", "json"] = Field(
        "logfmt", description="One line per event on stderr, as logfmt or JSON.", examples=["json"]
    )
    repeat_interval: Duration = Field(
        60.0,
        description="A repeated error (same component, same cause) is logged once per this interval, "
        "with the count of suppressed repeats.",
        examples=["60s"],
    )
    loss_summary_interval: Duration = Field(
        60.0,
        ge=1.0,
        description="How often the loss ledger is summarised in one log line (only when something was "
        "not delivered in that interval).",
        examples=["1m"],
    )


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    memory: Size | None = Field(
        None,
        description="Most bytes all memory buffers and receivers' connections (`max_in_flight_bytes`) together "
        "may hold; a config whose bounds add up to more is rejected.",
        examples=["512MiB"],
    )
    disk: Size | None = Field(
        None,
        description="Most bytes all disk buffers and dead-letter queues together may use; a config whose "
        "bounds add up to more is rejected.",
        examples=["20GiB"],
    )


class RootConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: str = Field(
        DATA_DIR,
        description="Checkpoints, disk buffers and dead letters live here. A relative path is relative to "
        "the config file's directory.",
        examples=[DATA_DIR],
    )
    api: ApiSettings = Field(ApiSettings(), description="The self-observability HTTP API.")
    log: LogSettings = Field(LogSettings(), description="The daemon's own logs.")
    budgets: Budgets = Field(
        Budgets(),
        description="Process-wide bounds that the buffers' own bounds must fit in.",
        examples=[{"memory": "512MiB", "disk": "20GiB"}],
    )
    shutdown_grace: Duration = Field(
        SHUTDOWN_GRACE_SECONDS,
        description="On SIGTERM, the upper bound of the whole stop: in-flight data may drain this long, then "
        "what is left is cancelled (a disk buffer keeps it, the rest is counted); the process exits within "
        "this plus 2s.",
        examples=["30s"],
    )
    inputs: dict[str, Any] = Field(default_factory=dict, description="Named inputs: where data comes from.")
    processors: dict[str, Any] = Field(
        default_factory=dict, description="Named processors: transform batches between inputs and outputs."
    )
    outputs: dict[str, Any] = Field(default_factory=dict, description="Named outputs: where data goes.")
    tests: list[Any] = Field(
        default_factory=list,
        description="Pipeline unit tests run by `collector test` (docs/testing-pipelines.md); `run` ignores them.",
    )
