"""`alert`: evaluates rules over the records routed to it and publishes notifications.

An output, not a `rules:` section: routing (`inputs:`), filters and fan-out work as for any
output, so one config can alert on `app_json` while shipping it, and a rule sees exactly what a
sibling output sees. Rule evaluation is plugins/common/alerting/engine.py; this module runs it:

- every batch is evaluated at its arrival time, and a timer ticks every `evaluation_interval` so
  that windows close, silent streams (flatline) and missing data are noticed without traffic;
- state (open alarms, windows, terms, pending aggregation, the outbox of notifications not yet
  acknowledged) is saved atomically (temporary file + rename, fsync) in the component's state
  directory before a notification is published, and at least every `checkpoint_interval`: after a
  kill -9 an open alarm stays open, nothing already notified fires again, and a notification not
  yet acknowledged is published again (same `id`);
- notifications go to the hub named `hub` (hub.py), where `alerts` inputs take them: they reach
  destinations through outputs and the shared driver (retried, dead-lettered, counted).

`write` never fails for the destination's sake (there is none): records are evaluated once; a
state file that cannot be written is logged, counted and retried at the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, ValidationError, computed_field, model_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.config.errors import ConfigError
from collector.config.messages import HINT_SEPARATOR
from collector.events import LOGS, METRICS, Batch
from collector.log import kv
from collector.units import Duration
from collector_plugins.common.alerting.engine import Engine
from collector_plugins.common.alerting.hub import Hub, hub
from collector_plugins.common.alerting.rules import Rule, check_unique, load_rule_file, without_type_tags

STATE_FILE = "alert_state.json"


class AlertConfig(OutputConfig):
    type: Literal["alert"] = Field(description="Evaluates alert rules over its records.", examples=["alert"])
    rules: list[Rule] = Field(
        default_factory=list,
        description="Rules written inline (see docs/alerting.md for every rule type).",
        examples=[[{"name": "errors", "type": "frequency", "num_events": 10, "timeframe": "1m"}]],
    )
    rule_files: list[str] = Field(
        default_factory=list,
        description="YAML files with a `rules:` list (relative paths: from the working directory); "
        "read again on reload (SIGHUP).",
        examples=[["/etc/collector/rules/api.yaml"]],
    )
    hub: str = Field(
        "alerts",
        min_length=1,
        description="Hub the notifications are published on: the `alerts` inputs with this `hub` take them.",
        examples=["alerts"],
    )
    evaluation_interval: Duration = Field(
        1.0, description="How often time moves on without records (windows close, flatlines).", examples=["1s"]
    )
    checkpoint_interval: Duration = Field(
        5.0,
        description="Longest time window counts stay unsaved (a state change is saved at once).",
        examples=["5s"],
    )
    max_outbox: int = Field(
        10000, ge=1, description="Most notifications kept while no input acknowledges them.", examples=[10000]
    )
    _file_rules: list[Any] = PrivateAttr(default_factory=list)
    _digest: str = PrivateAttr("")

    @model_validator(mode="wrap")
    @classmethod
    def _plain_locations(cls, data: Any, handler: Any) -> Any:
        """Errors located where the user wrote them: `rules[0].num_events`, not `rules[0].frequency.num_events`."""
        try:
            return handler(data)
        except ValidationError as exc:
            raise without_type_tags(exc) from None

    @model_validator(mode="after")
    def _load_files(self) -> AlertConfig:
        loaded: list[Any] = []
        digest = hashlib.sha256()
        problems: list[str] = []
        for path in self.rule_files:
            try:
                rules = load_rule_file(path)
            except ConfigError as exc:
                problems.extend(issue.format() for issue in exc.issues)
                continue
            loaded.extend(rules)
            digest.update(Path(path).read_bytes())
        if problems:
            raise ValueError(f"invalid rule file: {'; '.join(problems)}{HINT_SEPARATOR}fix the rule file and reload")
        every = [*self.rules, *loaded]
        if not every:
            raise ValueError(f"no rules{HINT_SEPARATOR}write `rules:` inline or name `rule_files:`")
        try:
            check_unique(every, "rules")
        except ConfigError as exc:
            raise ValueError(exc.issues[0].message + HINT_SEPARATOR + (exc.issues[0].hint or "")) from None
        self._file_rules = loaded
        self._digest = digest.hexdigest()[:16]
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def rule_files_digest(self) -> str:
        """Part of the component's identity: a reload with edited rule files restarts the output."""
        return self._digest

    def all_rules(self) -> list[Any]:
        return [*self.rules, *self._file_rules]


class AlertOutput(Output):
    type_name: ClassVar[str] = "alert"
    description: ClassVar[str] = (
        "Evaluates alert rules (threshold, frequency, spike, flatline, new_term...) over records."
    )
    Config: ClassVar[type[AlertConfig]] = AlertConfig
    accepts: ClassVar[frozenset[str]] = frozenset({LOGS, METRICS})
    default_max_events: ClassVar[int | None] = 5000

    config: AlertConfig

    def __init__(self, config: AlertConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._checkpoint = ctx.checkpoint_file(STATE_FILE)
        self._hub: Hub = hub(ctx.data_dir, config.hub)
        self.engine: Engine | None = None
        self.outbox: dict[str, dict[str, Any]] = {}
        self._published: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._last_save = 0.0
        self._dirty = False
        self.notifications = 0
        self.outbox_dropped = 0
        self.save_failures = 0
        self.records = 0

    def _build(self) -> Engine:
        now = time.time()
        saved: dict[str, Any] | None = None
        try:
            saved = self._checkpoint.load()
        except Exception as exc:
            self.log.error("alert state unreadable; starting with empty state", extra=kv(error=str(exc)))
        engine = Engine(self.config.all_rules(), now, source=self.ctx.name, host=self.ctx.host.host, snapshot=saved)
        if saved:
            for note in saved.get("outbox", []):
                self.outbox[note["id"]] = note
            dropped = [r.rule.name for r in engine.rules if r.rule.name not in engine.restored]
            if dropped and saved.get("rules"):
                self.log.info("alert rules start afresh (new or changed)", extra=kv(rules=",".join(dropped)))
        return engine

    async def start(self) -> None:
        self.engine = self._build()
        # What an earlier instance of this output left queued is in the outbox just loaded: publish once.
        self._hub.forget(self.ctx.name)
        self._publish()
        self._ticker = asyncio.create_task(self._tick_loop(), name=f"{self.ctx.name}-tick")

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.evaluation_interval)
            assert self.engine is not None
            self._handle(self.engine.tick(time.time()))

    async def write(self, batch: Batch) -> None:
        if self.engine is None:
            self.engine = self._build()
        self.records += len(batch.records)
        self._handle(self.engine.process(batch.kind, batch.records, time.time()))

    def _handle(self, notes: list[dict[str, Any]]) -> None:
        assert self.engine is not None
        for note in notes:
            self.outbox[note["id"]] = note
            self.notifications += 1
        while len(self.outbox) > self.config.max_outbox:
            oldest = next(iter(self.outbox))
            self.outbox.pop(oldest)
            self._published.discard(oldest)
            self.outbox_dropped += 1
            self.ctx.loss("alert_outbox_full", 1)
        now = time.monotonic()
        if self.engine.changed or self._dirty or notes or now - self._last_save >= self.config.checkpoint_interval:
            self._save(now)
        self._publish()

    def _save(self, now: float) -> None:
        assert self.engine is not None
        state = self.engine.snapshot()
        state["outbox"] = list(self.outbox.values())
        try:
            self._checkpoint.save(state)
        except OSError as exc:
            self.save_failures += 1
            self.engine.changed = True  # try again next time
            self.log.error("cannot save alert state", extra=kv(error=str(exc)))
            return
        self._dirty = False
        self._last_save = now

    def _publish(self) -> None:
        pending = [n for i, n in self.outbox.items() if i not in self._published]
        if not pending:
            return
        taken = self._hub.publish(self.ctx.name, pending, self._acknowledged)
        self._published.update(n["id"] for n in pending[:taken])

    def _acknowledged(self, ids: list[str]) -> None:
        for i in ids:
            if self.outbox.pop(i, None) is not None:
                self._dirty = True
            self._published.discard(i)

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if self.engine is not None:
            self._save(time.monotonic())
        self._hub.forget(self.ctx.name)
        self._published.clear()

    def counters(self) -> dict[str, float]:
        figures: dict[str, float] = {
            "notifications": self.notifications,
            "outbox": len(self.outbox),
            "outbox_dropped": self.outbox_dropped,
            "state_save_failures": self.save_failures,
        }
        if self.engine is not None:
            figures.update(self.engine.counters())
        else:
            figures.update(
                dict.fromkeys(("records_matched", "group_overflow", "silenced", "terms_forgotten", "alarms_open"), 0)
            )
        return figures
