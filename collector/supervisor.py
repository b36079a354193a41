"""Run one component forever: start it, run its loop, restart it when it fails.

Design note. A component's failure must never stop the process or its
neighbours. `supervise` owns the lifecycle of one component name:

    build instance -> start() -> body() -> stop()
          ^                         |
          +--- backoff <-- exception (logged once per cause, counted)

- `body` returning normally means the component finished (an input whose
  source ended, a consumer whose channel was closed or interrupted): stop() and
  return.
- An exception is counted in `errors` and `restarts`, logged with the component
  name (with its traceback only the first time that cause is seen), the instance
  is stopped and a fresh one is built from the same config after a backoff that
  doubles from 0.5 s up to 30 s and resets after a minute of healthy running.
- Each restart is counted with its time (`ComponentStats.restarted`): a
  component restarted `api.health.restart_limit` times within
  `restart_window` makes /healthz fail (see `collector.health`), so a restart
  loop is visible to probes, not only in the log.
- A stop request (`stopping` set) during the backoff ends supervision.
- Cancellation is not caught: it is the runtime's last resort at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from collector.api import Component
from collector.log import RepeatLimiter, kv
from collector.stats import ComponentStats

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0


class Supervised:
    """The mutable state of one supervised component (its current instance may change)."""

    def __init__(
        self,
        name: str,
        build: Callable[[], Component],
        body: Callable[[Supervised], Awaitable[None]],
        stats: ComponentStats,
        log: logging.Logger,
        limiter: RepeatLimiter,
    ) -> None:
        self.name = name
        self.build = build
        self.body = body
        self.stats = stats
        self.log = log
        self.limiter = limiter
        self.instance: Component | None = None
        self.retired: Component | None = None  # the last instance stopped (for its `drained` hook)
        self.stopping = asyncio.Event()
        self.finished = False
        self.task: asyncio.Task[None] | None = None
        self.on_stop_requested: Callable[[], None] = lambda: None

    def request_stop(self) -> None:
        self.stopping.set()
        self.on_stop_requested()

    async def run(self) -> None:
        backoff = INITIAL_BACKOFF
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                self.instance = self.build()
                await self.instance.start()
                self.stats.state = "running"
                await self.body(self)
            except asyncio.CancelledError:
                self.stats.state = "cancelled"
                await self._stop_instance(timeout=1.0)
                raise
            except Exception as exc:
                self.stats.errors += 1
                self.stats.state = "restarting"
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                self._log_failure(exc)
                await self._stop_instance(timeout=5.0)
                if loop.time() - started > HEALTHY_AFTER:
                    backoff = INITIAL_BACKOFF
                if await self._wait_or_stop(backoff):
                    break
                backoff = min(backoff * 2, MAX_BACKOFF)
                self.stats.restarted()  # timed too: /healthz reports a restart loop (collector/health.py)
                continue
            await self._stop_instance(timeout=None)
            break
        self.finished = True
        self.stats.state = "stopped"

    async def _wait_or_stop(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def _stop_instance(self, timeout: float | None) -> None:
        instance, self.instance = self.instance, None
        if instance is None:
            return
        self.retired = instance
        try:
            await asyncio.wait_for(instance.stop(), timeout=timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.warning(
                "component failed to stop cleanly",
                extra=kv(component=self.name, error=f"{type(exc).__name__}: {exc}"),
            )

    def _log_failure(self, exc: BaseException) -> None:
        cause = f"{type(exc).__name__}: {exc}"
        now, first, suppressed = self.limiter.check(self.name, type(exc).__name__)
        if not now:
            return
        fields: dict[str, Any] = {
            "component": self.name,
            "component_type": self.stats.type_name,
            "error": cause,
            "restarts": self.stats.restarts,
        }
        if suppressed:
            fields["repeats_suppressed"] = suppressed
        self.log.error(
            "component failed; restarting it",
            exc_info=exc if first else None,
            extra={"fields": fields},
        )
