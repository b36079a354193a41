"""Per rule type: what one group holds, and what state its data calls for.

`check(data, now)` returns a `Verdict`: the state the data calls for (`ALARM`, `OK`,
`INSUFFICIENT_DATA`, or None to keep the current one), a reason in words and the value compared.
The engine (engine.py) turns changes of state into notifications; evaluators never notify.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

from collector_plugins.common.alerting.rules import (
    FlatlineRule,
    FrequencyRule,
    NewTermRule,
    SpikeRule,
    ThresholdRule,
    _Windowed,
)
from collector_plugins.common.alerting.windows import Periods, SlidingCount

ALARM, OK, INSUFFICIENT = "ALARM", "OK", "INSUFFICIENT_DATA"


@dataclass(frozen=True)
class Verdict:
    state: str | None
    reason: str
    value: float | None = None


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class Evaluator:
    """Base: a sliding count over the rule's `timeframe` (frequency, any, blacklist, whitelist)."""

    needs_values = False

    def __init__(self, rule: Any) -> None:
        self.rule = rule

    def new(self, now: float) -> Any:
        return SlidingCount(self.rule.timeframe)

    def add(self, data: Any, now: float, n: int, values: list[float] | None) -> None:
        data.add(now, n)

    def check(self, data: Any, now: float, started: float) -> Verdict:
        data.advance(now)
        count = data.cur_total
        if count >= self._needed():
            return Verdict(ALARM, f"{count} matching records in the last {_span(self.rule.timeframe)}", count)
        return Verdict(OK, f"{count} matching records in the last {_span(self.rule.timeframe)}", count)

    def _needed(self) -> int:
        return 1

    def idle(self, data: Any) -> bool:
        return bool(data.empty())

    def dump(self, data: Any) -> Any:
        return data.dump()

    def load(self, dumped: Any, now: float) -> Any:
        data = self.new(now)
        data.load(dumped)
        return data


class FrequencyEvaluator(Evaluator):
    rule: FrequencyRule

    def _needed(self) -> int:
        return self.rule.num_events


class SpikeEvaluator(Evaluator):
    rule: SpikeRule

    def check(self, data: Any, now: float, started: float) -> Verdict:
        data.advance(now)
        cur, ref = data.cur_total, data.ref_total
        rule = self.rule
        words = f"{cur} records in the last {_span(rule.timeframe)} against {ref} in the {_span(rule.timeframe)} before"
        if now - started < 2 * rule.timeframe:
            return Verdict(None, "the reference window is not full yet", cur)
        if cur < rule.threshold_cur or ref < rule.threshold_ref:
            return Verdict(OK, words, cur)
        up = rule.spike_type in ("up", "both") and cur >= ref * rule.spike_height and cur > ref
        down = rule.spike_type in ("down", "both") and cur * rule.spike_height <= ref and cur < ref
        return Verdict(ALARM if up or down else OK, words, cur)


class FlatlineEvaluator(Evaluator):
    rule: FlatlineRule

    def check(self, data: Any, now: float, started: float) -> Verdict:
        data.advance(now)
        count = data.cur_total
        words = (
            f"{count} matching records in the last {_span(self.rule.timeframe)} (fewer than {self.rule.threshold} fire)"
        )
        if now - started < self.rule.timeframe:
            return Verdict(None, "the first window is not over yet", count)
        return Verdict(ALARM if count < self.rule.threshold else OK, words, count)

    def idle(self, data: Any) -> bool:
        return False  # a silent group is exactly what this rule watches for


class NewTermEvaluator(Evaluator):
    """A group per new term: ALARM from its first sighting until `timeframe` has passed."""

    rule: NewTermRule

    def check(self, data: Any, now: float, started: float) -> Verdict:
        data.advance(now)
        if data.cur_total:
            return Verdict(ALARM, f"new value of `{self.rule.field}`", data.cur_total)
        return Verdict(OK, f"no new sighting in the last {_span(self.rule.timeframe)}", 0)


_COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}
_WORDS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class ThresholdEvaluator(Evaluator):
    """CloudWatch's evaluation of the last N periods, M of them breaching, with TreatMissingData."""

    rule: ThresholdRule

    def __init__(self, rule: ThresholdRule) -> None:
        super().__init__(rule)
        self.needs_values = rule.statistic != "count"
        self._compare = _COMPARE[rule.comparison]

    def new(self, now: float) -> Any:
        # Twice N: with `missing` and `ignore`, CloudWatch looks further back for N datapoints.
        return Periods(self.rule.period, 2 * self.rule.evaluation_periods)

    def add(self, data: Any, now: float, n: int, values: list[float] | None) -> None:
        if values is None:
            data.add_count(now, n)
        else:
            data.add_values(now, values)

    def datapoint(self, closed: list[float] | None) -> float | None:
        statistic = self.rule.statistic
        if statistic == "count":
            return closed[0] if closed is not None else 0.0
        if closed is None:
            return None
        count, total, low, high = closed
        return {"sum": total, "avg": total / count, "min": low, "max": high}[statistic]

    def check(self, data: Any, now: float, started: float) -> Verdict:
        data.advance(now)
        rule = self.rule
        n = rule.evaluation_periods
        history: list[float | None] = [self.datapoint(h) for h in data.history]
        if len(history) < n and rule.statistic == "count":
            # Periods before the group existed count as empty ones.
            padding: list[float | None] = [0.0] * (n - len(history))
            history = padding + history
        points = history[-n:]
        latest = next((p for p in reversed(points) if p is not None), None)
        present = [p for p in points if p is not None]
        treat = rule.treat_missing_data
        if present and len(present) < n and treat in ("missing", "ignore"):
            present = [p for p in history if p is not None][-n:]  # the N most recent datapoints there are
        missing = n - len(present)
        breaching = sum(1 for p in present if self._compare(p, rule.threshold))
        if treat == "breaching":
            breaching += missing
        words = (
            f"{breaching} of the last {rule.evaluation_periods} datapoints ({rule.statistic} per {_span(rule.period)}) "
            f"{_WORDS[rule.comparison]} {rule.threshold:g}"
        )
        if breaching >= rule.needed:
            return Verdict(ALARM, words, latest)
        if not present and treat in ("missing", "ignore"):
            if treat == "missing":
                return Verdict(INSUFFICIENT, f"no data in the last {rule.evaluation_periods} periods", None)
            return Verdict(None, "no data: state kept", None)
        return Verdict(OK, words, latest)

    def idle(self, data: Any) -> bool:
        return data.acc[0] == 0 and all(h is None for h in data.history)


def evaluator_for(rule: Any) -> Evaluator:
    if isinstance(rule, ThresholdRule):
        return ThresholdEvaluator(rule)
    if isinstance(rule, FrequencyRule):
        return FrequencyEvaluator(rule)
    if isinstance(rule, SpikeRule):
        return SpikeEvaluator(rule)
    if isinstance(rule, FlatlineRule):
        return FlatlineEvaluator(rule)
    if isinstance(rule, NewTermRule):
        return NewTermEvaluator(rule)
    assert isinstance(rule, _Windowed)
    return Evaluator(rule)  # any, blacklist, whitelist: one match fires
