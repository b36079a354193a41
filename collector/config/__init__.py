"""Config loading and validation; see `loader` for the passes and `source` for YAML and `${VAR}`.

The loader is imported lazily so that `collector.graph` can use the error types
without an import cycle.
"""

from __future__ import annotations

from typing import Any

from collector.config.errors import ConfigError, ConfigIssue

__all__ = ["Config", "ConfigError", "ConfigIssue", "load_config", "load_config_lazily", "parse_config"]


def __getattr__(name: str) -> Any:
    if name in ("Config", "load_config", "load_config_lazily", "parse_config"):
        from collector.config import loader

        return getattr(loader, name)
    raise AttributeError(name)
