"""`collector rules test RULE_FILE --input SAMPLE.jsonl`: what the rules would notify, and when.

Like `elastalert-test-rule`: the sample's records are replayed through the same engine the `alert`
output runs, with each record's own timestamp as the clock. Time also moves on between records
and, after the last one, for `--tail` (default: twice the longest window of the rules), one `--step` at
a time, so silent streams, missing data and resolutions show. Prints one line per notification
(`--format json`: the notification records themselves) and a summary per rule.
Exit status: 0 after a replay, 2 for an invalid rule file or sample (file:line for each problem).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any, TextIO

EXIT_OK, EXIT_INVALID = 0, 2
MAX_TICKS_PER_GAP = 10_000


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / 1000.0 if value > 1e11 else float(value)  # epoch milliseconds too
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=datetime.UTC)
        return parsed.timestamp()
    return None


def read_sample(path: str, kind: str, field: str) -> list[tuple[float, Any]]:
    """(timestamp, record) per line; ValueError naming file:line for a bad line."""
    import orjson

    from collector.events import Metric

    out = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                doc = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(doc, dict):
                raise ValueError(f"{path}:{number}: a record must be a JSON object")
            ts = _timestamp(doc.get(field))
            if ts is None:
                raise ValueError(f"{path}:{number}: no usable `{field}` (epoch seconds or ISO 8601)")
            if kind == "metrics":
                record: Any = Metric(
                    str(doc.get("name", "")), doc.get("type", "gauge"), doc.get("value"), doc.get("tags") or {}, ts
                )
            else:
                record = {**doc, "timestamp": ts}
            out.append((ts, record))
    out.sort(key=lambda item: item[0])  # stable: lines of one instant keep their order
    return out


def _tail(rules: list[Any]) -> float:
    longest = 60.0
    for rule in rules:
        span = getattr(rule, "timeframe", 0.0)
        if rule.type == "threshold":
            span = rule.period * (rule.evaluation_periods + 1)
        elif rule.type == "spike":
            span *= 2
        longest = max(longest, span + rule.aggregation)
    return 2 * longest  # a window that ends with the last record is over, and noticed, well within this


def replay(
    rules: list[Any], sample: list[tuple[float, Any]], kind: str, step: float, tail: float | None
) -> tuple[list[dict[str, Any]], Any]:
    from collector_plugins.common.alerting.engine import Engine

    if not sample:
        return [], None
    start = sample[0][0]
    engine = Engine(rules, start, source="rules-test")
    notes: list[dict[str, Any]] = []
    clock = start
    i = 0
    while i < len(sample):
        ts = sample[i][0]
        gap = ts - clock
        if gap > step:
            stride = max(step, gap / MAX_TICKS_PER_GAP)
            t = clock + stride
            while t < ts:
                notes.extend(engine.tick(t))
                t += stride
        j = i
        while j < len(sample) and sample[j][0] == ts:
            j += 1
        notes.extend(engine.process(kind, [r for _, r in sample[i:j]], ts))
        clock, i = ts, j
    end = clock + (tail if tail is not None else _tail(rules))
    t = clock + step
    while t <= end:
        notes.extend(engine.tick(t))
        t += step
    return notes, engine


def print_report(notes: list[dict[str, Any]], engine: Any, fmt: str, out: TextIO) -> None:
    import orjson

    if fmt == "json":
        for note in notes:
            out.write(orjson.dumps(note, default=str).decode() + "\n")
        return
    for note in notes:
        out.write(f"{_when(note['timestamp'])}  {note['message']}\n")
    if engine is None:
        out.write("no records in the sample\n")
        return
    out.write("\nrule summary:\n")
    for rs in engine.rules:
        sent = sum(1 for n in notes if n["rule"] == rs.rule.name)
        open_groups = [k or "-" for k, g in rs.groups.items() if g.state == "ALARM"]
        out.write(
            f"  {rs.rule.name} ({rs.rule.type}): {rs.matched} matching records, {sent} notifications"
            + (f", still in ALARM: {', '.join(open_groups)}" if open_groups else "")
            + (f", {rs.silenced} silenced" if rs.silenced else "")
            + (f", {rs.overflow} records of groups over max_groups" if rs.overflow else "")
            + "\n"
        )


class RulesCommand:
    """`collector rules test`, registered in the `node_collector.commands` entry-point group."""

    name = "rules"
    help = "test alert rules against sample records"
    description = "Replay sample records (JSON lines) through alert rules and print what would fire and when."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="rules_command", metavar="WHAT", required=True)
        test = sub.add_parser(
            "test",
            help="replay SAMPLE.jsonl through the rules of RULE_FILE",
            description="Replay records with their own timestamps through the rules and print the notifications.",
        )
        test.add_argument("rule_file", metavar="RULE_FILE", help="YAML file with a `rules:` list")
        test.add_argument("--input", required=True, metavar="SAMPLE.jsonl", help="records, one JSON object a line")
        test.add_argument("--kind", choices=["logs", "metrics"], default="logs", help="what the records are")
        test.add_argument("--timestamp-field", default="timestamp", help="field holding each record's time")
        test.add_argument("--rule", action="append", help="test only this rule (repeatable)")
        test.add_argument("--step", type=float, default=1.0, help="seconds between evaluations without records")
        test.add_argument("--tail", type=float, default=None, help="seconds to go on after the last record")
        test.add_argument("--format", choices=["text", "json"], default="text")

    def run(self, args: argparse.Namespace) -> int:
        from collector.config.errors import ConfigError
        from collector_plugins.common.alerting.rules import load_rule_file

        try:
            rules = load_rule_file(args.rule_file)
        except ConfigError as exc:
            sys.stderr.write(exc.format() + "\n")
            return EXIT_INVALID
        if args.rule:
            unknown = sorted(set(args.rule) - {r.name for r in rules})
            if unknown:
                sys.stderr.write(f"{args.rule_file}: no rule named {', '.join(unknown)}\n")
                return EXIT_INVALID
            rules = [r for r in rules if r.name in args.rule]
        try:
            sample = read_sample(args.input, args.kind, args.timestamp_field)
        except OSError as exc:
            sys.stderr.write(f"{args.input}: cannot read: {exc.strerror}\n")
            return EXIT_INVALID
        except ValueError as exc:
            sys.stderr.write(f"{exc}\n")
            return EXIT_INVALID
        notes, engine = replay(rules, sample, args.kind, max(args.step, 0.001), args.tail)
        print_report(notes, engine, args.format, sys.stdout)
        return EXIT_OK
