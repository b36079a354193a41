"""The rule engine: batches in, notifications out, with state that survives restarts and reloads.

Design note.
- Time: the engine is told `now`. The `alert` output passes the arrival time of each batch (the
  collector sees records within milliseconds of their creation, and a replayed or late file must
  not open windows in the past); `collector rules test` passes each record's own timestamp.
  A batch's matches are counted at `now`; windows close when `tick(now)` (every second in the
  output) or a later batch moves time on.
- Work per batch, not per record: a rule's filter is a mask computed a column at a time
  (masks.py), counted with `list.count`, grouped with `collections.Counter`; only the matching
  records' numbers (threshold statistics) and a few examples are read one by one.
- States per rule and group (`query_key` value): OK -> ALARM -> OK (threshold rules also
  INSUFFICIENT_DATA, as CloudWatch). A notification goes out when a group enters ALARM, every
  `realert` while it stays there, and when it leaves it (`notify_resolved`); inside a `silence`
  window nothing goes out (counted) and an alarm first notified after the window still is. With
  `aggregation`, a rule's notifications wait that long and leave as one summary.
- Bounds: at most `max_groups` groups per rule (records of further groups counted as
  `group_overflow`), `max_terms` terms per new_term rule (least recently seen forgotten), windows
  of about 100 buckets (windows.py), `max_examples` records per notification.
- `snapshot()` is plain JSON data; the engine built from it restores every rule whose definition
  (`Rule.fingerprint`) is unchanged, with its open alarms, windows, terms and pending aggregation,
  and starts changed or new rules afresh.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import compress
from typing import Any

import orjson

from collector_plugins.common.alerting.evaluators import ALARM, INSUFFICIENT, OK, Evaluator, Verdict, evaluator_for
from collector_plugins.common.alerting.masks import Columns, MaskFn, compile_mask, group_key, in_values_mask
from collector_plugins.common.alerting.render import summary_text, title
from collector_plugins.common.alerting.rules import BlacklistRule, NewTermRule, ThresholdRule, WhitelistRule
from collector_plugins.processors.filter.processor import MISSING, _number

SNAPSHOT_VERSION = 1
MAX_AGGREGATED = 50  # notifications quoted in one aggregate summary
MAX_MESSAGE_CHARS = 2000  # of an example record's message


@dataclass
class Group:
    data: Any
    created: float
    state: str = OK
    since: float = 0.0
    last_notified: float | None = None
    matches: int = 0  # matching records since the last notification
    examples: list[Any] = field(default_factory=list)

    def dump(self, evaluator: Evaluator) -> list[Any]:
        return [
            self.state,
            self.since,
            self.last_notified,
            self.matches,
            self.examples,
            self.created,
            evaluator.dump(self.data),
        ]

    @classmethod
    def load(cls, dumped: list[Any], evaluator: Evaluator, now: float) -> Group:
        state, since, last, matches, examples, created, data = dumped
        return cls(evaluator.load(data, now), created, state, since, last, matches, list(examples))


def _example(record: Any) -> Any:
    if isinstance(record, dict):
        out = {}
        for k, v in record.items():
            if isinstance(v, bytes | bytearray):
                v = v.decode("utf-8", "replace")
            if k == "message" and isinstance(v, str) and len(v) > MAX_MESSAGE_CHARS:
                v = v[:MAX_MESSAGE_CHARS] + "..."
            out[k] = v
        record = out
    elif hasattr(record, "to_dict"):
        record = record.to_dict()
    return orjson.loads(orjson.dumps(record, default=str))


class RuleState:
    """One rule's compiled mask, evaluator, groups and counters."""

    def __init__(self, rule: Any, now: float) -> None:
        self.rule = rule
        self.fingerprint = rule.fingerprint()
        self.evaluator = evaluator_for(rule)
        extra = []
        if isinstance(rule, BlacklistRule):
            extra.append(in_values_mask(rule.compare_key, rule.blacklist, negate=False))
        elif isinstance(rule, WhitelistRule):
            extra.append(in_values_mask(rule.compare_key, rule.whitelist, negate=True, ignore_null=rule.ignore_null))
        self.mask: MaskFn = compile_mask(rule.filter, rule.match, extra)
        self.started = now
        self.groups: dict[str, Group] = {}
        self.terms: dict[str, float] = {}  # new_term: term -> last seen, least recent first
        self.aggregated: list[dict[str, Any]] = []
        self.aggregate_until: float | None = None
        self.matched = 0
        self.overflow = 0
        self.silenced = 0
        self.terms_forgotten = 0
        if rule.query_key is None and not isinstance(rule, NewTermRule):
            self.groups[""] = Group(self.evaluator.new(now), now, since=now)

    def group(self, key: str, now: float, n: int) -> Group | None:
        g = self.groups.get(key)
        if g is None:
            if len(self.groups) >= self.rule.max_groups:
                self.overflow += n
                return None
            g = self.groups[key] = Group(self.evaluator.new(now), now, since=now)
        return g

    def dump(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "started": self.started,
            "groups": {k: g.dump(self.evaluator) for k, g in self.groups.items()},
            "terms": list(self.terms.items()),
            "aggregated": self.aggregated,
            "aggregate_until": self.aggregate_until,
            "counters": [self.matched, self.overflow, self.silenced, self.terms_forgotten],
        }

    def load(self, dumped: dict[str, Any], now: float) -> None:
        self.started = dumped["started"]
        self.groups = {k: Group.load(g, self.evaluator, now) for k, g in dumped["groups"].items()}
        self.terms = dict((t, s) for t, s in dumped.get("terms", ()))
        self.aggregated = list(dumped.get("aggregated", ()))
        self.aggregate_until = dumped.get("aggregate_until")
        self.matched, self.overflow, self.silenced, self.terms_forgotten = dumped.get("counters", [0, 0, 0, 0])


class Engine:
    """Evaluates `rules` over batches; returns the notifications (log records) each call produced."""

    def __init__(
        self,
        rules: list[Any],
        now: float,
        source: str = "alert",
        host: str | None = None,
        snapshot: dict[str, Any] | None = None,
    ) -> None:
        self.source = source
        self.host = host
        self.seq = 0
        self.rules = [RuleState(rule, now) for rule in rules]
        self.restored: list[str] = []
        self.changed = False  # a state or notification changed since the last snapshot
        if snapshot and snapshot.get("version") == SNAPSHOT_VERSION:
            self.seq = int(snapshot.get("seq", 0))
            saved = snapshot.get("rules", {})
            for rs in self.rules:
                old = saved.get(rs.rule.name)
                if old is not None and old.get("fingerprint") == rs.fingerprint:
                    rs.load(old, now)
                    self.restored.append(rs.rule.name)

    # ------------------------------------------------------------------ intake

    def process(self, kind: str, records: list[Any], now: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if not records:
            return out
        cols = Columns(kind, records)
        for rs in self.rules:
            mask = rs.mask(cols)
            n = len(records) if mask is None else mask.count(True)
            if not n:
                continue
            rs.matched += n
            touched = self._add(rs, cols, mask, n, now)
            for key in touched:
                g = rs.groups.get(key)
                if g is not None:
                    self._apply(rs, key, g, rs.evaluator.check(g.data, now, g.created), now, out)
        self._flush_aggregates(now, out)
        return out

    def _add(self, rs: RuleState, cols: Columns, mask: list[bool] | None, n: int, now: float) -> list[str]:
        rule = rs.rule
        records = cols.records
        if isinstance(rule, NewTermRule):
            return self._new_terms(rs, cols, mask, now)
        evaluator = rs.evaluator
        if rule.query_key is None:
            g = rs.groups[""]
            values = None
            if evaluator.needs_values:
                assert isinstance(rule, ThresholdRule) and rule.field is not None
                col = cols.column(rule.field)
                values = [x for x in map(_number, col if mask is None else compress(col, mask)) if x is not None]
            evaluator.add(g.data, now, n, values)
            g.matches += n
            wanted = rule.max_examples - len(g.examples)
            if wanted > 0:
                matched = records if mask is None else compress(records, mask)
                for record, _ in zip(matched, range(wanted), strict=False):
                    g.examples.append(_example(record))
            return [""]
        keys = cols.column(rule.query_key)
        chosen = keys if mask is None else list(compress(keys, mask))
        counts = Counter(chosen)
        per_group: dict[Any, list[float]] = {}
        if evaluator.needs_values:
            assert isinstance(rule, ThresholdRule) and rule.field is not None
            col = cols.column(rule.field)
            vals = col if mask is None else list(compress(col, mask))
            for k, v in zip(chosen, vals, strict=True):
                x = _number(v)
                if x is not None:
                    per_group.setdefault(k, []).append(x)
        touched = []
        needing: dict[Any, Group] = {}
        for raw, count in counts.items():
            key = group_key(raw)
            found = rs.group(key, now, count)
            if found is None:
                continue
            evaluator.add(found.data, now, count, per_group.get(raw, []) if evaluator.needs_values else None)
            found.matches += count
            if len(found.examples) < rule.max_examples:
                needing[raw] = found
            touched.append(key)
        if needing:
            matched = records if mask is None else compress(records, mask)
            for raw, record, _ in zip(chosen, matched, range(1000), strict=False):
                wanting = needing.get(raw)
                if wanting is not None and len(wanting.examples) < rule.max_examples:
                    wanting.examples.append(_example(record))
        return touched

    def _new_terms(self, rs: RuleState, cols: Columns, mask: list[bool] | None, now: float) -> list[str]:
        rule = rs.rule
        col = cols.column(rule.field)
        values = col if mask is None else compress(col, mask)
        try:
            distinct = set(values)
        except TypeError:  # lists or objects: grouped by their text
            distinct = {group_key(v) for v in (col if mask is None else compress(col, mask))}
        distinct.discard(MISSING)
        terms = rs.terms
        learning = now - rs.started < rule.learn_for
        touched = []
        for raw in distinct:
            term = group_key(raw)
            last = terms.pop(term, None)
            terms[term] = now
            if last is not None and now - last < rule.terms_window:
                continue
            if len(terms) > rule.max_terms:
                del terms[next(iter(terms))]
                rs.terms_forgotten += 1
            if learning:
                continue
            g = rs.group(term, now, 1)
            if g is None:
                continue
            rs.evaluator.add(g.data, now, 1, None)
            g.matches += 1
            touched.append(term)
        return touched

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[dict[str, Any]]:
        """Move time on: windows close, silent streams and missing data are noticed, aggregates leave."""
        out: list[dict[str, Any]] = []
        for rs in self.rules:
            rule = rs.rule
            idle = []
            for key, g in rs.groups.items():
                self._apply(rs, key, g, rs.evaluator.check(g.data, now, g.created), now, out)
                if key and g.state == OK and rs.evaluator.idle(g.data):
                    idle.append(key)
            for key in idle:
                del rs.groups[key]
            if isinstance(rule, NewTermRule):
                terms = rs.terms
                while terms:
                    term, last = next(iter(terms.items()))
                    if now - last < rule.terms_window:
                        break
                    del terms[term]
                    rs.terms_forgotten += 1
        self._flush_aggregates(now, out)
        return out

    # ------------------------------------------------------------------ states and notifications

    def _apply(
        self, rs: RuleState, key: str, g: Group, verdict: Verdict, now: float, out: list[dict[str, Any]]
    ) -> None:
        new = verdict.state
        if new is None:
            return
        rule = rs.rule
        if new == ALARM:
            if g.state != ALARM:
                previous, g.state, g.since = g.state, ALARM, now
                self.changed = True
                self._notify(rs, key, g, "alarm", previous, verdict, now, out)
            elif g.last_notified is None:
                self._notify(rs, key, g, "alarm", ALARM, verdict, now, out)  # silenced until now
            elif rule.realert > 0 and now - g.last_notified >= rule.realert:
                self._notify(rs, key, g, "realert", ALARM, verdict, now, out)
            return
        if g.state == new:
            return
        previous, g.state, g.since = g.state, new, now
        self.changed = True
        if previous == ALARM and g.last_notified is not None and rule.notify_resolved:
            self._notify(rs, key, g, "resolved", previous, verdict, now, out)
        if previous == ALARM:
            g.last_notified = None
            g.matches = 0
            g.examples = []

    def _notify(
        self,
        rs: RuleState,
        key: str,
        g: Group,
        event: str,
        previous: str,
        verdict: Verdict,
        now: float,
        out: list[dict[str, Any]],
    ) -> None:
        rule = rs.rule
        self.changed = True
        if rule.silenced(now):
            rs.silenced += 1
            return
        self.seq += 1
        note: dict[str, Any] = {
            "timestamp": now,
            "id": f"{self.source}/{rule.name}/{self.seq}",
            "source": self.source,
            "rule": rule.name,
            "rule_type": rule.type,
            "event": event,
            "state": g.state,
            "previous_state": previous,
            "group": key if rule.query_key is not None or isinstance(rule, NewTermRule) else None,
            "query_key": rule.query_key if not isinstance(rule, NewTermRule) else rule.field,
            "reason": verdict.reason,
            "value": verdict.value,
            "since": g.since,
            "matches": g.matches,
            "examples": g.examples if event != "resolved" else [],
            "description": rule.description,
            "labels": dict(rule.labels),
        }
        if self.host is not None:
            note["host"] = self.host
        note["message"] = title(note)
        g.last_notified = now
        g.matches = 0
        g.examples = []
        if rule.aggregation > 0:
            rs.aggregated.append(note)
            if rs.aggregate_until is None:
                rs.aggregate_until = now + rule.aggregation
            return
        out.append(note)

    def _flush_aggregates(self, now: float, out: list[dict[str, Any]]) -> None:
        for rs in self.rules:
            if rs.aggregate_until is None or now < rs.aggregate_until:
                continue
            notes, rs.aggregated, rs.aggregate_until = rs.aggregated, [], None
            self.changed = True
            if not notes:
                continue
            if len(notes) == 1:
                out.append(notes[0])
                continue
            self.seq += 1
            last = notes[-1]
            summary: dict[str, Any] = {
                "timestamp": now,
                "id": f"{self.source}/{rs.rule.name}/{self.seq}",
                "source": self.source,
                "rule": rs.rule.name,
                "rule_type": rs.rule.type,
                "event": "aggregate",
                "state": last["state"],
                "previous_state": notes[0]["previous_state"],
                "group": None,
                "query_key": last["query_key"],
                "reason": f"{len(notes)} notifications in {rs.rule.aggregation:g}s",
                "value": len(notes),
                "since": notes[0]["timestamp"],
                "matches": sum(n["matches"] for n in notes),
                "examples": [ex for n in notes for ex in n["examples"]][: rs.rule.max_examples],
                "description": rs.rule.description,
                "labels": dict(rs.rule.labels),
                "count": len(notes),
                "notifications": [
                    {k: n[k] for k in ("timestamp", "event", "state", "group", "reason", "value")}
                    for n in notes[:MAX_AGGREGATED]
                ],
            }
            if self.host is not None:
                summary["host"] = self.host
            summary["message"] = summary_text(summary)
            out.append(summary)

    # ------------------------------------------------------------------ state and figures

    def snapshot(self) -> dict[str, Any]:
        self.changed = False
        return {"version": SNAPSHOT_VERSION, "seq": self.seq, "rules": {rs.rule.name: rs.dump() for rs in self.rules}}

    def open_alarms(self) -> list[tuple[str, str, float]]:
        """(rule, group, since) of every group in ALARM."""
        return [(rs.rule.name, k, g.since) for rs in self.rules for k, g in rs.groups.items() if g.state == ALARM]

    def counters(self) -> dict[str, int]:
        return {
            "records_matched": sum(rs.matched for rs in self.rules),
            "group_overflow": sum(rs.overflow for rs in self.rules),
            "silenced": sum(rs.silenced for rs in self.rules),
            "terms_forgotten": sum(rs.terms_forgotten for rs in self.rules),
            "alarms_open": len(self.open_alarms()),
        }


__all__ = ["ALARM", "INSUFFICIENT", "OK", "Engine"]
