"""`collector run`: the daemon's main loop.

Signal handlers only set flags; this loop acts on them:
- SIGHUP: validate the whole file again; if it is invalid, log every error and
  keep running the old topology; otherwise apply the difference.
- SIGTERM / SIGINT: stop inputs, drain within `shutdown_grace`, exit 0.
- All inputs finished (a generator with `count`, stdin at EOF): drain and exit
  0, as Vector does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from collector import __version__
from collector.api import HostFacts
from collector.config import Config, ConfigError, load_config, load_config_lazily
from collector.config.model import parse_listen
from collector.config.secrets import redact, secret_values
from collector.defaults import SHUTDOWN_SLACK_SECONDS
from collector.health import HealthPolicy, liveness_problems, readiness_problems
from collector.log import RepeatLimiter, configure_logging, kv
from collector.notify import Notifier
from collector.private_files import private_dir
from collector.registry import Registry
from collector.runtime import Runtime
from collector.stats import RuntimeCollector, make_registry

if TYPE_CHECKING:
    from collector.http import ApiServer

log = logging.getLogger("collector.daemon")


class Daemon:
    def __init__(
        self, config_path: str, config: Config, registry: Registry, backstop: bool = False, lazy_plugins: bool = False
    ) -> None:
        """`backstop`: at a stop, exit the process at the bound whatever hangs (the CLI's daemon only,
        never a daemon run inside another program, such as a test). `lazy_plugins`: a reload validates
        against the plugins the new file names, imported then (`load_config_lazily`), not `registry`."""
        self.lazy_plugins = lazy_plugins
        self.config_path = config_path
        self.backstop = backstop
        self.config = config
        self.registry = registry
        self.notifier = Notifier()
        self.runtime = Runtime(
            config.data_dir,
            HostFacts(socket.gethostname()),
            RepeatLimiter(config.root.log.repeat_interval),
        )
        self.reloads = {"success": 0, "failure": 0}
        self.metrics_registry = make_registry(
            RuntimeCollector(
                self.runtime.all_stats,
                lambda: dict(self.reloads),
                lambda: {"healthz": self.liveness()[0], "readyz": self.readiness()[0]},
            )
        )
        self.api: ApiServer | None = None
        self.started_at = time.time()
        self.ready = False
        self.shutting_down = False
        self._wake = asyncio.Event()
        self._signals: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig, name in ((signal.SIGTERM, "term"), (signal.SIGINT, "term"), (signal.SIGHUP, "hup")):
            loop.add_signal_handler(sig, self._on_signal, name)
        try:
            private_dir(self.config.data_dir, existing=False)  # created 0700: it holds buffered data
        except OSError as exc:
            log.error("cannot create the data directory", extra=kv(path=self.config.data_dir, error=exc.strerror))
            return 1
        if not await self._start_api(self.config):
            return 1
        watchdog = asyncio.create_task(self.notifier.watchdog(), name="watchdog")
        ledger = asyncio.create_task(self._loss_summaries(), name="loss-ledger")
        try:
            changes = await self.runtime.apply(self.config.graph)
            self.ready = True
            # What start-up built (modules, plugin classes, config models) lives as long as the process:
            # keep it out of every later collection, which then scans only what the pipeline allocates.
            gc.collect()
            gc.freeze()
            self.notifier.ready()
            log.info(
                "collector started",
                extra=kv(
                    version=__version__, config=self.config_path, components=len(changes["added"]), api=self._api_url()
                ),
            )
            await self._main_loop()
        finally:
            for task in (watchdog, ledger):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._log_losses(self._ledger_totals(), since="start", final=True)
        return 0

    # -- the loss ledger ----------------------------------------------------------------------------

    def _ledger_totals(self) -> dict[tuple[str, str], int]:
        return {
            (st.name, reason): count for st in self.runtime.all_stats() for reason, count in st.dropped.items() if count
        }

    async def _loss_summaries(self) -> None:
        """One log line per interval listing what was not delivered, by component and reason."""
        previous: dict[tuple[str, str], int] = {}
        while True:
            await asyncio.sleep(self.config.root.log.loss_summary_interval)
            current = self._ledger_totals()
            delta = {k: v - previous.get(k, 0) for k, v in current.items() if v - previous.get(k, 0) > 0}
            previous = current
            self._log_losses(delta, since=f"last {self.config.root.log.loss_summary_interval:g}s")

    def _log_losses(self, counts: dict[tuple[str, str], int], since: str, final: bool = False) -> None:
        if not counts:
            return
        fields: dict[str, Any] = {"since": since, "events": sum(counts.values())}
        fields.update({f"{component}.{reason}": n for (component, reason), n in sorted(counts.items())})
        # Records filtered out on purpose are accounted for, not a problem.
        level = logging.INFO if all(reason == "filtered" for _, reason in counts) else logging.WARNING
        message = "loss ledger: events not delivered" + (" during this run" if final else "")
        log.log(level, message, extra={"fields": fields})

    def _on_signal(self, name: str) -> None:
        self._signals.append(name)
        self._wake.set()

    async def _main_loop(self) -> None:
        finished = asyncio.create_task(self.runtime.inputs_finished.wait())
        try:
            while True:
                wake = asyncio.create_task(self._wake.wait())
                await asyncio.wait({wake, finished}, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                self._wake.clear()
                signals, self._signals = self._signals, []
                if "term" in signals:
                    await self._shutdown("signal")
                    return
                if "hup" in signals:
                    await self.reload()
                if finished.done():
                    if self.runtime.inputs_finished.is_set():
                        await self._shutdown("all inputs finished")
                        return
                    finished = asyncio.create_task(self.runtime.inputs_finished.wait())
        finally:
            finished.cancel()

    async def _shutdown(self, reason: str) -> None:
        self.shutting_down = True
        self.ready = False
        self.notifier.stopping()
        grace = self.config.root.shutdown_grace
        log.info("shutting down", extra=kv(reason=reason, grace_seconds=grace))
        # The bound is grace + SHUTDOWN_SLACK_SECONDS: the runtime gets half the slack to cancel
        # and close, the API a quarter, and the backstop fires at the bound whatever still hangs
        # (a thread blocked in a system call keeps the interpreter from exiting).
        if self.backstop:
            _arm_backstop(grace + SHUTDOWN_SLACK_SECONDS)
        clean = await self.runtime.shutdown(grace, slack=SHUTDOWN_SLACK_SECONDS / 2)
        if self.api is not None:
            try:
                await asyncio.wait_for(self.api.stop(), timeout=SHUTDOWN_SLACK_SECONDS / 4)
            except TimeoutError:
                log.warning("the API did not stop in time; leaving it")
        log.info("collector stopped", extra=kv(drained=clean))
        self.notifier.close()

    async def reload(self) -> bool:
        self.notifier.reloading()
        log.info("reloading config", extra=kv(config=self.config_path))
        try:
            if self.lazy_plugins:
                new, self.registry = await asyncio.to_thread(load_config_lazily, self.config_path)
            else:
                new = await asyncio.to_thread(load_config, self.config_path, self.registry)
        except ConfigError as exc:
            self.reloads["failure"] += 1
            for issue in exc.issues:
                log.error("config reload rejected; keeping the running config", extra=kv(error=issue.format()))
            self.notifier.ready("running (last reload rejected)")
            return False
        if new.data_dir != self.config.data_dir:
            log.warning("data_dir changes take effect only after a restart", extra=kv(data_dir=new.data_dir))
        # Always: a reload may bring new secrets that the log must not show.
        configure_logging(new.root.log.level, new.root.log.format, secrets=new.secret_values())
        self.runtime.limiter.interval = new.root.log.repeat_interval
        if new.root.api != self.config.root.api:
            await self._restart_api(new)
        changes = await self.runtime.apply(new.graph)
        self.config = Config(new.root, new.graph, new.file, self.config.data_dir)
        self.reloads["success"] += 1
        log.info("config reloaded", extra=kv(**{k: ",".join(v) or "-" for k, v in changes.items()}))
        self.notifier.ready()
        return True

    # -- API ---------------------------------------------------------------------------------------

    async def _start_api(self, config: Config) -> bool:
        if not config.root.api.enabled:
            return True
        # Imported here: aiohttp's server is a large share of the process's memory; no API, no aiohttp.
        from collector.http import ApiServer
        from collector.tap import TapHub

        host, port = parse_listen(config.root.api.listen)
        api = ApiServer(self.metrics_registry, self.status, self.readiness, self.liveness, TapHub(self.runtime))
        try:
            await api.start(host, port)
        except OSError as exc:
            log.error("cannot listen for the API", extra=kv(listen=config.root.api.listen, error=exc.strerror))
            return False
        self.api = api
        return True

    async def _restart_api(self, new: Config) -> None:
        old = self.api
        if old is not None:
            await old.stop()
            self.api = None
        if not await self._start_api(new) and old is not None:
            log.error("keeping the API on its previous address", extra=kv(listen=self.config.root.api.listen))
            await self._start_api(self.config)

    def _api_url(self) -> str | None:
        if self.api is None or self.api.bound is None:
            return None
        host, port = self.api.bound
        return f"http://{host}:{port}"

    def _health_policy(self) -> HealthPolicy:
        h = self.config.root.api.health
        return HealthPolicy(h.restart_limit, h.restart_window, h.wedged_after, h.full_after)

    def liveness(self) -> tuple[bool, list[str]]:
        problems = liveness_problems(self.runtime.all_stats(), self._health_policy())
        return not problems, problems

    def readiness(self) -> tuple[bool, str]:
        if self.shutting_down:
            return False, "shutting down"
        if not self.ready:
            return False, "starting"
        problems = readiness_problems(self.runtime.all_stats(), self._health_policy())
        if problems:
            return False, "; ".join(problems)
        return True, "running"

    def status(self) -> dict[str, Any]:
        components = []
        for name, spec in self.runtime.graph.components.items():
            st = self.runtime.stats.get(name)
            entry: dict[str, Any] = {
                "name": name,
                "section": spec.section,
                "type": spec.type_name,
                "inputs": list(spec.upstreams),
                "accepts": sorted(spec.accepts),
                "emits": sorted(spec.emits),
            }
            if st is not None:
                entry["state"] = st.state
                # An exception's text may quote the config (a proxy URL with its password): never a secret.
                last_error = st.last_error
                if last_error:
                    last_error = redact(last_error, secret_values(spec.plugin.Config, spec.config))
                entry["last_error"] = last_error
                entry.update(st.snapshot())
            components.append(entry)
        ready, ready_reason = self.readiness()
        healthy, health_problems = self.liveness()
        return {
            "version": __version__,
            "config": self.config_path,
            "started_at": self.started_at,
            "uptime_seconds": time.time() - self.started_at,
            "ready": ready,
            "ready_reason": ready_reason,
            "healthy": healthy,
            "health_problems": health_problems,
            "reloads": dict(self.reloads),
            "components": components,
        }


def _arm_backstop(seconds: float) -> None:
    """Exit with status 1 after `seconds` unless the process has exited by then.

    The last resort behind the runtime's own bounded stop: only something that ignores
    cancellation, or a thread stuck in a system call, can bring the process this far.
    """

    def fire() -> None:
        log.error("stop overran shutdown_grace and its slack; exiting now", extra=kv(after_seconds=seconds))
        sys.stderr.flush()
        os._exit(1)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


async def run_daemon(config_path: str, config: Config, registry: Registry) -> int:
    return await Daemon(config_path, config, registry, backstop=True, lazy_plugins=True).run()
