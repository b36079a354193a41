"""The `alert` output and the `alerts` input: state on disk, the outbox, acknowledgements, rule files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.config.errors import ConfigError
from collector.config.loader import parse_config
from collector.events import LOGS, Batch
from collector.testing import component_context, input_context, wait_for
from collector_plugins.common.alerting.rules import load_rule_file
from collector_plugins.inputs.alerts.input import AlertsConfig, AlertsInput
from collector_plugins.outputs.alert.output import STATE_FILE, AlertConfig, AlertOutput

RULES = [
    {
        "name": "errors",
        "type": "frequency",
        "num_events": 3,
        "timeframe": "1h",
        "filter": [{"field": "level", "equals": "error"}],
    },
    {
        "name": "per_host",
        "type": "any",
        "timeframe": "1h",
        "query_key": "host",
        "filter": [{"field": "level", "equals": "fatal"}],
    },
]


def alert_output(tmp_path: Path, **extra: Any) -> AlertOutput:
    config = AlertConfig.model_validate({"type": "alert", "inputs": ["app"], "rules": RULES, **extra})
    return AlertOutput(config, component_context("alerting", tmp_path))


def state(tmp_path: Path) -> dict[str, Any]:
    return orjson.loads((tmp_path / "components" / "alerting" / STATE_FILE).read_bytes())


def errors(n: int, level: str = "error", host: str = "web-1") -> Batch:
    return Batch(LOGS, [{"message": f"{level} {i}", "level": level, "host": host} for i in range(n)], 10 * n)


class Receiver:
    """An `alerts` input running in the test's loop; keeps the batches it emitted."""

    def __init__(self, tmp_path: Path) -> None:
        self.batches: list[Batch] = []

        async def emit(batch: Batch) -> None:
            self.batches.append(batch)

        self.ctx = input_context("notes", tmp_path, emit)
        self.input = AlertsInput(AlertsConfig(type="alerts"), self.ctx)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.input.run(self.ctx))

    async def stop(self) -> None:
        self.ctx.stopping.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for b in self.batches for r in b.records]


async def test_notification_stays_in_the_outbox_until_acknowledged(tmp_path: Path) -> None:
    out = alert_output(tmp_path)
    await out.start()
    receiver = Receiver(tmp_path)
    receiver.start()
    await out.write(errors(3))
    await wait_for(lambda: len(receiver.records) == 1)
    note = receiver.records[0]
    assert (note["rule"], note["event"], note["state"], note["source"]) == ("errors", "alarm", "ALARM", "alerting")
    saved = state(tmp_path)
    assert [n["id"] for n in saved["outbox"]] == [note["id"]]  # saved before it was published
    receiver.batches[0].ack.release()  # what the runtime does once the batch is delivered / durable
    assert out.outbox == {}
    await out.write(errors(1, level="info"))  # the next save records the acknowledgement
    assert state(tmp_path)["outbox"] == []
    assert out.counters()["alarms_open"] == 1
    await receiver.stop()
    await out.stop()


async def test_restart_keeps_open_alarm_and_republishes_unacknowledged(tmp_path: Path) -> None:
    out = alert_output(tmp_path)
    await out.start()
    await out.write(errors(3))
    await out.write(errors(1, level="fatal", host="db-1"))
    assert len(out.outbox) == 2  # nobody consumed them
    # A crash: no stop(), the instance is just gone. A new one starts from the saved state.
    out._ticker.cancel()  # type: ignore[union-attr]
    again = alert_output(tmp_path)
    await again.start()
    receiver = Receiver(tmp_path)
    receiver.start()
    await wait_for(lambda: len(receiver.records) == 2)
    assert sorted(n["rule"] for n in receiver.records) == ["errors", "per_host"]
    await again.write(errors(5))  # still in ALARM: nothing new
    await again.write(errors(2, level="fatal", host="db-1"))
    assert len(again.outbox) == 2 and again.counters()["notifications"] == 0
    assert {(r, g) for r, g, _ in again.engine.open_alarms()} == {("errors", ""), ("per_host", "db-1")}  # type: ignore[union-attr]
    await receiver.stop()
    await again.stop()


async def test_rule_change_starts_that_rule_afresh(tmp_path: Path) -> None:
    out = alert_output(tmp_path)
    await out.start()
    await out.write(errors(3))
    await out.stop()
    changed = [{**RULES[0], "num_events": 4}, RULES[1]]
    config = AlertConfig.model_validate({"type": "alert", "inputs": ["app"], "rules": changed})
    again = AlertOutput(config, component_context("alerting", tmp_path))
    await again.start()
    assert again.engine is not None and again.engine.restored == ["per_host"]
    assert again.engine.open_alarms() == []
    await again.stop()


async def test_ticker_notices_silence_without_records(tmp_path: Path) -> None:
    config = AlertConfig.model_validate(
        {
            "type": "alert",
            "inputs": ["app"],
            "evaluation_interval": "50ms",
            "rules": [{"name": "quiet", "type": "flatline", "threshold": 1, "timeframe": "1s"}],
        }
    )
    out = AlertOutput(config, component_context("alerting", tmp_path))
    await out.start()
    await wait_for(lambda: out.counters()["notifications"] == 1, timeout=5)
    assert next(iter(out.outbox.values()))["rule"] == "quiet"
    await out.stop()


def test_rule_file_errors_name_file_line_and_key(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: ok\n"
        "    type: any\n"
        "  - name: bad\n"
        "    type: frequency\n"
        "    num_events: lots\n"
        "    timeframe: 1m\n"
        "    unknwon: 1\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_rule_file(rules)
    text = caught.value.format()
    assert f"{rules}:6:" in text and "rules[1].num_events" in text and "whole number" in text
    assert f"{rules}:8:" in text and "unknown option `unknwon`" in text
    # The same problems through the collector's own config validation, as `collector validate` shows them.
    config = tmp_path / "collector.yaml"
    config.write_text(
        f"data_dir: {tmp_path}\n"
        "inputs: {app: {type: generator}}\n"
        f"outputs: {{alerting: {{type: alert, inputs: [app], rule_files: [{rules}]}}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(config.read_text(), str(config))
    text = caught.value.format()
    assert "outputs.alerting" in text and f"{rules}:6:" in text and "rules[1].num_events" in text


def test_unknown_rule_type_and_duplicate_names(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: a, type: sometimes}\n")
    with pytest.raises(ConfigError) as caught:
        load_rule_file(rules)
    assert f"{rules}:2:" in caught.value.format() and "threshold" in caught.value.format()
    rules.write_text("rules:\n  - {name: a, type: any}\n  - {name: a, type: any}\n")
    with pytest.raises(ConfigError, match="used twice"):
        load_rule_file(rules)


def test_edited_rule_file_changes_the_component_identity(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {name: a, type: any}\n")
    body = {"type": "alert", "inputs": ["app"], "rule_files": [str(rules)]}
    first = AlertConfig.model_validate(body).model_dump(mode="json")
    assert first == AlertConfig.model_validate(body).model_dump(mode="json")
    rules.write_text("rules:\n  - {name: a, type: any, timeframe: 5m}\n")
    assert AlertConfig.model_validate(body).model_dump(mode="json") != first  # a reload replaces the output


def test_no_rules_is_an_error() -> None:
    with pytest.raises(ValueError, match="no rules"):
        AlertConfig.model_validate({"type": "alert", "inputs": ["app"]})


def test_inline_rule_errors_are_located_where_written(tmp_path: Path) -> None:
    text = (
        f"data_dir: {tmp_path}\n"
        "inputs: {app: {type: generator}}\n"
        "outputs:\n"
        "  alerting:\n"
        "    type: alert\n"
        "    inputs: [app]\n"
        "    rules:\n"
        "      - name: lots\n"
        "        type: frequency\n"
        "        num_events: many\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml")
    (issue,) = caught.value.issues
    assert (issue.line, issue.key_path) == (10, "outputs.alerting.rules[0].num_events")
    assert issue.message.startswith("must be a whole number")
