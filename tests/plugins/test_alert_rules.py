"""Every alert rule type on crafted streams: fires once, re-alerts after `realert`, resolves.

The engine is driven with explicit times (as `collector rules test` does), so each test states
exactly when records arrive and when time moves on.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter

from collector.events import LOGS, METRICS, Metric
from collector_plugins.common.alerting.engine import Engine
from collector_plugins.common.alerting.rules import Rule

T0 = 1_800_000_000.0  # aligned to every period used here
RULE: TypeAdapter[Any] = TypeAdapter(Rule)


def rule(**body: Any) -> Any:
    return RULE.validate_python({"name": "r", **body})


def events(notes: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
    return [(n["event"], n["group"], n["state"]) for n in notes]


def logs(n: int, **fields: Any) -> list[dict[str, Any]]:
    return [{"message": "m", **fields} for _ in range(n)]


def run_ticks(engine: Engine, start: float, end: float, step: float = 1.0) -> list[dict[str, Any]]:
    out = []
    t = start
    while t <= end:
        out.extend(engine.tick(t))
        t += step
    return out


def test_frequency_fires_once_realerts_and_resolves() -> None:
    r = rule(
        type="frequency", num_events=5, timeframe="10s", realert="30s", filter=[{"field": "level", "equals": "error"}]
    )
    e = Engine([r], T0)
    assert e.process(LOGS, logs(4, level="error") + logs(10, level="info"), T0) == []
    fired = e.process(LOGS, logs(1, level="error"), T0 + 1)
    assert events(fired) == [("alarm", None, "ALARM")]
    assert fired[0]["matches"] == 5 and len(fired[0]["examples"]) == 3
    # More matches while in ALARM: no new notification before `realert`.
    out = []
    for i in range(2, 30):
        out += e.process(LOGS, logs(5, level="error"), T0 + i)
    assert out == []
    reminder = e.process(LOGS, logs(5, level="error"), T0 + 31)
    assert events(reminder) == [("realert", None, "ALARM")]
    # Silence: the window empties and the group resolves, once.
    resolved = run_ticks(e, T0 + 32, T0 + 60)
    assert events(resolved) == [("resolved", None, "OK")]


def test_frequency_groups_by_query_key_and_bounds_groups() -> None:
    r = rule(type="frequency", num_events=2, timeframe="1m", query_key="host", max_groups=2)
    e = Engine([r], T0)
    out = e.process(LOGS, logs(2, host="a") + logs(1, host="b") + logs(3, host="c"), T0)
    # a and b take the two groups; c overflows (counted), b has too few.
    assert events(out) == [("alarm", "a", "ALARM")]
    assert out[0]["query_key"] == "host" and "(host=a)" in out[0]["message"]
    assert e.counters()["group_overflow"] == 3
    assert events(e.process(LOGS, logs(1, host="b"), T0 + 1)) == [("alarm", "b", "ALARM")]


def test_any_fires_on_one_match_and_resolves_after_timeframe() -> None:
    r = rule(type="any", timeframe="5s", filter=[{"field": "message", "contains": "panic"}])
    e = Engine([r], T0)
    assert e.process(LOGS, [{"message": "fine"}], T0) == []
    fired = e.process(LOGS, [{"message": b"kernel panic"}], T0 + 1)
    assert events(fired) == [("alarm", None, "ALARM")]
    assert fired[0]["examples"] == [{"message": "kernel panic"}]
    assert e.process(LOGS, [{"message": "panic again"}], T0 + 2) == []
    assert events(run_ticks(e, T0 + 3, T0 + 10)) == [("resolved", None, "OK")]


def test_blacklist_and_whitelist() -> None:
    black = rule(type="blacklist", name="black", compare_key="user", blacklist=["root"], timeframe="5s")
    white = rule(type="whitelist", name="white", compare_key="country", whitelist=["FR", "DE"], ignore_null=True)
    e = Engine([black, white], T0)
    assert e.process(LOGS, [{"user": "alice", "country": "FR"}, {"user": "bob"}], T0) == []
    out = e.process(LOGS, [{"user": "root", "country": "US"}], T0 + 1)
    assert sorted(n["rule"] for n in out) == ["black", "white"]
    assert all(n["event"] == "alarm" for n in out)


def test_whitelist_without_ignore_null_fires_on_missing_field() -> None:
    e = Engine([rule(type="whitelist", compare_key="country", whitelist=["FR"])], T0)
    assert events(e.process(LOGS, [{"message": "no country"}], T0)) == [("alarm", None, "ALARM")]


def test_spike_up_needs_full_reference_and_minimums() -> None:
    r = rule(type="spike", timeframe="10s", spike_height=3, spike_type="up", threshold_ref=5, threshold_cur=10)
    e = Engine([r], T0)
    out = []
    for i in range(20):  # one record a second: a steady reference of 10 per window
        out += e.process(LOGS, logs(1), T0 + i)
    assert out == []
    for i in range(20, 30):
        out += e.process(LOGS, logs(4), T0 + i)  # 40 per window against 10 before
    assert events(out) == [("alarm", None, "ALARM")]
    assert "against" in out[0]["reason"]
    later = []
    for i in range(30, 60):
        later += e.process(LOGS, logs(4), T0 + i)  # the new rate becomes the reference
    assert events(later) == [("resolved", None, "OK")]


def test_spike_down() -> None:
    r = rule(type="spike", timeframe="10s", spike_height=4, spike_type="down")
    e = Engine([r], T0)
    out = []
    for i in range(20):
        out += e.process(LOGS, logs(10), T0 + i)
    assert out == []
    for i in range(20, 32):
        out += e.process(LOGS, logs(1), T0 + i)
    assert events(out) == [("alarm", None, "ALARM")]


def test_spike_below_minimum_does_not_fire() -> None:
    r = rule(type="spike", timeframe="10s", spike_height=2, threshold_cur=100)
    e = Engine([r], T0)
    out = []
    for i in range(20):
        out += e.process(LOGS, logs(1), T0 + i)
    for i in range(20, 30):
        out += e.process(LOGS, logs(5), T0 + i)
    assert out == []


def test_flatline_fires_when_a_stream_goes_silent_and_resolves() -> None:
    r = rule(type="flatline", threshold=3, timeframe="10s", realert="20s")
    e = Engine([r], T0)
    out = []
    for i in range(12):
        out += e.process(LOGS, logs(1), T0 + i)
        out += e.tick(T0 + i + 0.5)
    assert out == []
    silent = run_ticks(e, T0 + 12, T0 + 40)
    assert [n["event"] for n in silent] == ["alarm", "realert"]
    assert silent[1]["timestamp"] - silent[0]["timestamp"] == 20
    assert events(e.process(LOGS, logs(3), T0 + 41)) == [("resolved", None, "OK")]


def test_flatline_waits_for_the_first_window() -> None:
    e = Engine([rule(type="flatline", threshold=1, timeframe="10s")], T0)
    assert run_ticks(e, T0, T0 + 9) == []
    assert events(e.tick(T0 + 10)) == [("alarm", None, "ALARM")]


def test_flatline_per_group() -> None:
    e = Engine([rule(type="flatline", threshold=1, timeframe="10s", query_key="host")], T0)
    e.process(LOGS, logs(1, host="a") + logs(1, host="b"), T0)
    out = []
    for i in range(1, 25):
        out += e.process(LOGS, logs(1, host="a"), T0 + i)
        out += e.tick(T0 + i)
    assert events(out) == [("alarm", "b", "ALARM")]


def test_new_term_fires_per_new_value_and_forgets_after_terms_window() -> None:
    r = rule(type="new_term", field="ua", terms_window="1h", learn_for="10s", timeframe="5s", notify_resolved=False)
    e = Engine([r], T0)
    assert e.process(LOGS, [{"ua": "curl"}, {"ua": "firefox"}], T0) == []  # learning
    assert e.process(LOGS, [{"ua": "curl"}], T0 + 11) == []
    out = e.process(LOGS, [{"ua": "sqlmap"}, {"ua": "sqlmap"}, {"ua": "curl"}], T0 + 12)
    assert events(out) == [("alarm", "sqlmap", "ALARM")]
    assert out[0]["query_key"] == "ua"
    assert e.process(LOGS, [{"ua": "sqlmap"}], T0 + 13) == []  # known now
    assert run_ticks(e, T0 + 14, T0 + 30) == []  # resolves silently (notify_resolved: false)
    # firefox was last seen at T0: after terms_window it is new again.
    assert events(e.process(LOGS, [{"ua": "firefox"}], T0 + 3601)) == [("alarm", "firefox", "ALARM")]


def test_new_term_bounded_terms() -> None:
    r = rule(type="new_term", field="ua", max_terms=3, timeframe="1s")
    e = Engine([r], T0)
    e.process(LOGS, [{"ua": str(i)} for i in range(5)], T0)
    assert len(e.rules[0].terms) == 3
    assert e.counters()["terms_forgotten"] == 2


@pytest.mark.parametrize(
    ("treat", "expected"),
    [("missing", "INSUFFICIENT_DATA"), ("ignore", "ALARM"), ("breaching", "ALARM"), ("notBreaching", "OK")],
)
def test_threshold_missing_data_treatment(treat: str, expected: str) -> None:
    r = rule(
        type="threshold",
        field="value",
        statistic="avg",
        comparison="gt",
        threshold=90,
        period="10s",
        evaluation_periods=3,
        datapoints_to_alarm=2,
        treat_missing_data=treat,
    )
    e = Engine([r], T0)
    cpu = [Metric("cpu", "gauge", 95.0, {}, T0)]
    out = []
    for i in range(3):  # three breaching periods
        out += e.process(METRICS, cpu, T0 + i * 10 + 1)
    out += e.tick(T0 + 30)
    assert events(out) == [("alarm", None, "ALARM")]
    out = run_ticks(e, T0 + 31, T0 + 70)  # no data at all for 4 periods
    states = [n["state"] for n in out]
    if expected == "ALARM":
        assert out == [] and e.rules[0].groups[""].state == "ALARM"
    else:
        assert states == [expected]
        assert e.rules[0].groups[""].state == expected


def test_threshold_m_of_n_and_statistics() -> None:
    r = rule(
        type="threshold", field="latency", statistic="max", comparison="gte", threshold=500,
        period="10s", evaluation_periods=3, datapoints_to_alarm=2,
    )  # fmt: skip
    e = Engine([r], T0)
    out = e.process(LOGS, [{"latency": 100}, {"latency": "600"}], T0 + 1)  # max 600: breaching
    out += e.process(LOGS, [{"latency": 100}], T0 + 11)  # not breaching
    out += e.tick(T0 + 20)
    assert out == []  # 1 of 3
    out += e.process(LOGS, [{"latency": 501}, {"latency": "bad"}], T0 + 21)
    out += e.tick(T0 + 30)
    assert events(out) == [("alarm", None, "ALARM")]
    assert out[0]["value"] == 501


def test_threshold_count_of_records_per_group() -> None:
    r = rule(type="threshold", comparison="gt", threshold=3, period="10s", query_key="status")
    e = Engine([r], T0)
    e.process(LOGS, logs(5, status=500) + logs(2, status=200), T0 + 1)
    out = e.tick(T0 + 10)
    assert events(out) == [("alarm", "500", "ALARM")]
    out = e.tick(T0 + 20)  # an empty period counts 0: resolved
    assert events(out) == [("resolved", "500", "OK")]


def test_silence_holds_notifications_and_alarm_is_sent_after() -> None:
    r = rule(
        type="any",
        timeframe="1h",
        silence=[{"start": "2027-01-15T08:00:00Z", "end": "2027-01-15T08:10:00Z"}],
    )
    start = 1_799_999_000.0  # 2027-01-15T07:43:20Z
    e = Engine([r], start)
    silenced_at = 1_800_000_100.0  # 08:01:40, inside the window
    assert e.process(LOGS, logs(1), silenced_at) == []
    assert e.counters()["silenced"] == 1
    after = e.tick(1_800_000_700.0)  # 08:11:40: still in ALARM, never notified
    assert events(after) == [("alarm", None, "ALARM")]


def test_aggregation_sends_one_summary() -> None:
    r = rule(type="any", timeframe="1s", query_key="host", aggregation="1m", notify_resolved=False)
    e = Engine([r], T0)
    out = []
    for i in range(10):
        out += e.process(LOGS, logs(1, host=f"h{i}"), T0 + i)
    assert out == []
    out = run_ticks(e, T0 + 10, T0 + 61)
    assert len(out) == 1
    summary = out[0]
    assert summary["event"] == "aggregate" and summary["count"] == 10
    assert [n["group"] for n in summary["notifications"]] == [f"h{i}" for i in range(10)]


def test_snapshot_keeps_open_alarms_and_windows_for_unchanged_rules_only() -> None:
    kept = rule(type="frequency", name="kept", num_events=3, timeframe="1m")
    changed = rule(type="frequency", name="changed", num_events=3, timeframe="1m")
    e = Engine([kept, changed], T0)
    assert len(e.process(LOGS, logs(3), T0)) == 2
    snap = e.snapshot()
    changed2 = rule(type="frequency", name="changed", num_events=4, timeframe="1m")
    restored = Engine([kept, changed2], T0 + 5, snapshot=snap)
    assert restored.restored == ["kept"]
    assert restored.open_alarms() == [("kept", "", T0)]
    # The restored rule neither fires again nor forgets its window; the changed one starts afresh.
    out = restored.process(LOGS, logs(1), T0 + 6)
    assert [n["rule"] for n in out] == []
    assert restored.rules[0].groups[""].data.cur_total == 4
    assert restored.rules[1].groups[""].data.cur_total == 1
    assert restored.seq == e.seq


def test_filter_uses_the_filter_processor_conditions() -> None:
    r = rule(
        type="frequency",
        num_events=2,
        timeframe="1m",
        match="any",
        filter=[{"field": "status", "gte": 500}, {"field": "k8s.namespace", "in": ["prod"]}],
    )
    e = Engine([r], T0)
    records = [{"status": "503"}, {"status": 200, "k8s": {"namespace": "prod"}}, {"status": 200}]
    out = e.process(LOGS, records, T0)
    assert out and out[0]["matches"] == 2


def test_rule_validation_messages() -> None:
    with pytest.raises(ValueError, match="needs a `field`"):
        rule(type="threshold", statistic="avg", threshold=1)
    with pytest.raises(ValueError, match="exceeds evaluation_periods"):
        rule(type="threshold", threshold=1, evaluation_periods=2, datapoints_to_alarm=3)
    with pytest.raises(ValueError, match="no query_key"):
        rule(type="new_term", field="a", query_key="b")
