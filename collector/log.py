"""The daemon's own logs: one line per event on stderr, logfmt or JSON.

Log calls pass structured fields through `extra={"fields": {...}}` (see `kv`).
`RepeatLimiter` keeps a failing component from flooding the log: the first
occurrence of a (component, cause) pair is logged with its traceback, repeats
within the interval are counted and summarised in the next line that gets out.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

import orjson

_RESERVED = {"ts", "level", "logger", "msg"}


def kv(**fields: Any) -> dict[str, Any]:
    """`log.info("started", extra=kv(component="x"))`."""
    return {"fields": fields}


def _logfmt_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\\\n\t'):
        text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
        return f'"{text}"'
    return text


class _Redacting(logging.Formatter):
    """Replaces the config's secret values wherever they appear in a finished line.

    Plugins and libraries may put a secret into an exception's text (a proxy URL with its
    password, a DSN); the line is checked whole, traceback included. Lines are rare (never
    per event), so the scan costs nothing that matters.
    """

    secrets: tuple[str, ...] = ()

    def format(self, record: logging.LogRecord) -> str:
        line = self.format_line(record)
        if self.secrets:
            from collector.config.secrets import redact

            line = redact(line, self.secrets)
        return line

    def format_line(self, record: logging.LogRecord) -> str:
        raise NotImplementedError


class LogfmtFormatter(_Redacting):
    def format_line(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [f"ts={ts}", f"level={record.levelname.lower()}", f"msg={_logfmt_value(record.getMessage())}"]
        for key, value in getattr(record, "fields", {}).items():
            parts.append(f"{key if key not in _RESERVED else 'field_' + key}={_logfmt_value(value)}")
        if record.exc_info:
            parts.append(f"error={_logfmt_value(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(_Redacting):
    def format_line(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
        }
        for key, value in getattr(record, "fields", {}).items():
            out[key if key not in _RESERVED else "field_" + key] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure_logging(
    level: str = "info", fmt: str = "logfmt", stream: TextIO | None = None, secrets: Iterable[str] = ()
) -> None:
    """Route the `collector` logger tree to stderr in the chosen format (idempotent, used on reload too).

    `secrets`: the values of the config's secret options, never written to the log.
    """
    root = logging.getLogger("collector")
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: _Redacting = JsonFormatter() if fmt == "json" else LogfmtFormatter()
    formatter.secrets = tuple(value for value in secrets if value)
    handler.setFormatter(formatter)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    # Third-party libraries log through the root logger; keep them quiet and in the same format.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class RepeatLimiter:
    """Decides whether a repeated event is logged now, and how many repeats were suppressed."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._last: dict[tuple[str, ...], float] = {}
        self._suppressed: dict[tuple[str, ...], int] = {}

    def check(self, *key: str) -> tuple[bool, bool, int]:
        """(log it now, first time ever, repeats suppressed since the last line)."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return False, False, 0
        self._last[key] = now
        return True, last is None, self._suppressed.pop(key, 0)
