"""Embedded Metric Format documents: validation against the specification, safe repairs, splits.

CloudWatch Logs extracts metrics from an EMF document only when the whole
metadata block is valid; otherwise the log event is stored and its metrics
silently vanish. `EmfChecker.check` makes every document it passes on one
CloudWatch will extract, and says what could not be saved:

- **split** (safe, nothing changes meaning): a document with more than 100
  metric definitions, or a metric array with more than 100 values, becomes
  several documents of at most 100 definitions and 100 values per metric each,
  every one carrying the other members unchanged (a metric's values appear in
  exactly one of them);
- **repaired** (safe): a missing or non-integer `Timestamp` is set (the
  receipt time, or the float rounded); one that is not a number or lies
  outside epoch 0 .. year 9999 (NaN, `1e300`, negative) is set to the receipt
  time and counted in `invalid_timestamps`; an invalid `Unit` or `StorageResolution`
  is removed (CloudWatch's defaults, None and 60, then apply);
- **dropped and counted** (not safe to guess): a metric whose value is
  missing or not a number / array of numbers (`emf_metric_without_value`); a
  dimension set with more than 30 keys (`emf_too_many_dimensions`) or naming a
  member that is missing or not a non-empty string (`emf_invalid_dimension`); a
  directive without a valid namespace, metrics or dimensions
  (`emf_invalid_directive`). The counts are metric definitions whose values
  CloudWatch would not publish (per dimension set for dimension problems).

A document whose metadata block is gone altogether is passed on as a plain log
line. Limits come from the specification page below, checked on the date given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from collector.events import Metric
from collector_plugins.common.metrics.units import CLOUDWATCH_UNITS as UNITS

SPEC = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html"
CHECKED = "2026-11-26"
MAX_METRICS_PER_DOCUMENT: Final = 100  # MetricDirective.Metrics "MUST NOT contain more than 100"
MAX_VALUES_PER_METRIC: Final = 100  # "Numeric array metric targets MUST NOT have more than 100 members"
MAX_DIMENSIONS_PER_SET: Final = 30  # "A DimensionSet MUST NOT contain more than 30 dimension keys"
MAX_NAME_LENGTH: Final = 1024  # metric names (the aws-embedded-metrics libraries' limit)
MAX_NAMESPACE_LENGTH: Final = 255  # CloudWatch namespaces: 1-255 characters, not starting with ':'
MAX_DIMENSION_VALUE_LENGTH: Final = 1024  # CloudWatch Dimension.Value: 1-1024
# 9999-12-31T23:59:59.999Z in epoch milliseconds: the last instant a date type (and CloudWatch) can name; far
# below 2**63, so a checked Timestamp always serialises as a 64-bit JSON integer.
MAX_TIMESTAMP_MS: Final = 253_402_300_799_999


@dataclass
class Checked:
    """The outcome for one input document."""

    documents: list[dict[str, Any]]
    """What to pass on: one or more valid EMF documents, or the input as a plain log document."""
    emf: bool
    """Whether `documents` are EMF (else the input had no usable metadata and goes on as a plain line)."""
    changed: bool
    """Whether anything was split or repaired (else the original text can be passed on as it is)."""
    losses: dict[str, int] = field(default_factory=dict)
    repairs: int = 0


@dataclass
class _Directive:
    namespace: str
    dimensions: list[list[str]]
    metrics: list[dict[str, Any]]


@dataclass
class _Shape:
    """One directive's structure, checked once per distinct `CloudWatchMetrics` block (documents repeat it)."""

    namespace: str
    metrics: list[dict[str, Any]]
    """Definitions with a valid, unique name (unit and storage resolution repaired)."""
    dimensions: list[list[str]]
    """Dimension sets of at most 30 string keys."""
    oversized_sets: int
    """Dimension sets with more than 30 keys."""
    unnamed_sets: int
    """Dimension sets with a key that is not a string (they name no member)."""
    had_dimensions: bool
    """Whether the directive listed any dimension set (if all are dropped, its metrics are lost)."""


@dataclass
class _Block:
    shapes: list[_Shape]
    invalid: int
    """Metric definitions lost to invalid directives or names."""
    repairs: int
    cut: bool


def _is_number(value: Any) -> bool:
    return (type(value) is float and math.isfinite(value)) or type(value) is int


_STATISTICS = ("Count", "Sum", "Min", "Max")


def _valid_values(value: Any) -> bool:
    """A number, a non-empty array of numbers, or a statistic set object (with optional Values/Counts)."""
    if _is_number(value):
        return True
    kind = type(value)
    if kind is list:
        return bool(value) and all(map(_is_number, value))
    if kind is dict:
        # The form the CloudWatch agent's and OpenTelemetry's EMF exporters write for histograms.
        if not all(_is_number(value.get(k)) for k in _STATISTICS) or value["Count"] <= 0:
            return False
        values, counts = value.get("Values"), value.get("Counts")
        if values is None and counts is None:
            return True
        return (
            type(values) is list
            and type(counts) is list
            and len(values) == len(counts) > 0
            and all(map(_is_number, values))
            and all(_is_number(c) and c >= 0 for c in counts)
        )
    return False


def _length(value: Any) -> int:
    """How many values a metric target holds (what the 100-values rule counts)."""
    kind = type(value)
    if kind is list:
        return len(value)
    if kind is dict and "Values" in value:
        return len(value["Values"])
    return 1


def _value_slice(value: Any, lo: int, hi: int) -> Any:
    """Values [lo, hi) of a metric target; None when it has none there.

    A statistic set with Values/Counts is cut into sets whose counts add up to
    the original Count, whose sums add up to the original Sum (spread in
    proportion to value x count), and whose extremes include the original Min
    and Max: every statistic CloudWatch computes over the pieces is unchanged.
    """
    if type(value) is list:
        return value[lo:hi] if lo < len(value) else None
    if type(value) is not dict or "Values" not in value:
        return value if lo == 0 else None
    values, counts = value["Values"], value["Counts"]
    if lo >= len(values):
        return None
    part_values, part_counts = values[lo:hi], counts[lo:hi]
    weighted = math.fsum(v * c for v, c in zip(values, counts, strict=True))
    part_weighted = math.fsum(v * c for v, c in zip(part_values, part_counts, strict=True))
    share = part_weighted / weighted if weighted else sum(part_counts) / sum(counts)
    return {
        "Values": part_values,
        "Counts": part_counts,
        "Count": math.fsum(part_counts),
        "Sum": value["Sum"] * share,
        "Min": value["Min"] if lo == 0 else min(part_values),
        "Max": value["Max"] if hi >= len(values) else max(part_values),
    }


CACHED_BLOCKS = 1024


class EmfChecker:
    """Validates, repairs and splits EMF documents; counts what it did. Synchronous."""

    def __init__(self) -> None:
        self.split = 0
        """Documents split into several."""
        self.repaired = 0
        """Documents with a repaired timestamp, unit or storage resolution."""
        self.invalid_timestamps = 0
        """Documents whose `Timestamp` was there but unusable (not a number, or outside 0..year 9999): set to
        the receipt time."""
        self._blocks: dict[bytes, _Block] = {}

    def check(self, doc: dict[str, Any], now_ms: int) -> Checked:
        aws = doc.get("_aws")
        if type(aws) is not dict:
            return Checked([doc], emf=False, changed=False)
        losses: dict[str, int] = {}
        repairs = 0
        stamp = aws.get("Timestamp")
        if type(stamp) is not int or not 0 <= stamp <= MAX_TIMESTAMP_MS:
            if type(stamp) is float and 0.0 <= stamp <= MAX_TIMESTAMP_MS:
                aws["Timestamp"] = int(stamp)
            else:
                # Missing, not a number, NaN, negative or past year 9999 (`1e300` would become an integer wider
                # than 64 bits that no JSON encoder writes): the receipt time, and counted.
                if stamp is not None:
                    self.invalid_timestamps += 1
                aws["Timestamp"] = now_ms
            repairs += 1
        raw_directives = aws.get("CloudWatchMetrics")
        if type(raw_directives) is not list:
            _count(losses, "emf_invalid_directive", 1)
            return Checked([doc], emf=False, changed=False, losses=losses)
        block = self._block(raw_directives)
        _count(losses, "emf_invalid_directive", block.invalid)
        repairs += block.repairs
        trimmed = block.cut
        directives: list[_Directive] = []
        for shape in block.shapes:
            kept = [m for m in shape.metrics if _valid_values(doc.get(m["Name"]))]
            sets = [keys for keys in shape.dimensions if all(_dimension_value_ok(doc.get(k)) for k in keys)]
            n = len(kept)
            _count(losses, "emf_metric_without_value", len(shape.metrics) - n)
            _count(losses, "emf_too_many_dimensions", shape.oversized_sets * n)
            _count(losses, "emf_invalid_dimension", (len(shape.dimensions) - len(sets) + shape.unnamed_sets) * n)
            if (
                n != len(shape.metrics)
                or len(sets) != len(shape.dimensions)
                or shape.oversized_sets + shape.unnamed_sets
            ):
                trimmed = True
            if kept and (sets or not shape.had_dimensions):
                directives.append(_Directive(shape.namespace, sets, kept))
        if not directives:
            return Checked([doc], emf=False, changed=False, losses=losses)
        changed = repairs > 0 or trimmed
        if repairs:
            self.repaired += 1
        total = sum(len(d.metrics) for d in directives)
        longest = max((_length(doc[m["Name"]]) for d in directives for m in d.metrics), default=1)
        if total <= MAX_METRICS_PER_DOCUMENT and longest <= MAX_VALUES_PER_METRIC:
            if changed:
                aws["CloudWatchMetrics"] = [_directive_json(d, d.metrics) for d in directives]
            return Checked([doc], emf=True, changed=changed, losses=losses, repairs=repairs)
        self.split += 1
        return Checked(_split(doc, aws, directives, longest), emf=True, changed=True, losses=losses, repairs=repairs)

    def _block(self, raw_directives: list[Any]) -> _Block:
        try:
            key = orjson.dumps(raw_directives)
        except TypeError:  # not JSON-serialisable cannot come from a parsed document; check without caching
            return _check_block(raw_directives)
        block = self._blocks.get(key)
        if block is None:
            if len(self._blocks) >= CACHED_BLOCKS:
                self._blocks.clear()
            block = self._blocks[key] = _check_block(raw_directives)
        return block


def _check_block(raw_directives: list[Any]) -> _Block:
    shapes: list[_Shape] = []
    invalid = repairs = 0
    cut = False
    for raw in raw_directives:
        metrics = raw.get("Metrics") if type(raw) is dict else None
        namespace = raw.get("Namespace") if type(raw) is dict else None
        dimensions = raw.get("Dimensions") if type(raw) is dict else None
        if (
            type(namespace) is not str
            or not 1 <= len(namespace) <= MAX_NAMESPACE_LENGTH
            or namespace.startswith((":", "AWS/"))
            or type(metrics) is not list
            or type(dimensions) is not list
            or not all(type(s) is list for s in dimensions)
        ):
            invalid += len(metrics) if type(metrics) is list else 1
            cut = True
            continue
        kept: list[dict[str, Any]] = []
        seen: set[str] = set()
        for definition in metrics:
            name = definition.get("Name") if type(definition) is dict else None
            if type(name) is not str or not 1 <= len(name) <= MAX_NAME_LENGTH or name in seen or name == "_aws":
                invalid += 1
                cut = True
                continue
            seen.add(name)
            unit = definition.get("Unit")
            resolution = definition.get("StorageResolution")
            if (unit is not None and unit not in UNITS) or (resolution is not None and resolution not in (1, 60)):
                definition = {k: v for k, v in definition.items() if k not in ("Unit", "StorageResolution")}
                if unit in UNITS:
                    definition["Unit"] = unit
                if resolution in (1, 60) and type(resolution) is int:
                    definition["StorageResolution"] = resolution
                repairs += 1
            kept.append(definition)
        sets = [keys for keys in dimensions if len(keys) <= MAX_DIMENSIONS_PER_SET]
        named = [keys for keys in sets if all(type(k) is str for k in keys)]
        shapes.append(
            _Shape(namespace, kept, named, len(dimensions) - len(sets), len(sets) - len(named), bool(dimensions))
        )
    return _Block(shapes, invalid, repairs, cut)


def _dimension_value_ok(value: Any) -> bool:
    return type(value) is str and 1 <= len(value) <= MAX_DIMENSION_VALUE_LENGTH and not value.isspace()


def _count(losses: dict[str, int], reason: str, n: int) -> None:
    if n:
        losses[reason] = losses.get(reason, 0) + n


def _directive_json(directive: _Directive, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Namespace": directive.namespace, "Dimensions": directive.dimensions, "Metrics": metrics}


def _split(
    doc: dict[str, Any], aws: dict[str, Any], directives: list[_Directive], longest: int
) -> list[dict[str, Any]]:
    """Documents of at most 100 definitions and 100 values per metric; each value in exactly one of them."""
    targets = {m["Name"] for d in directives for m in d.metrics}
    base = {k: v for k, v in doc.items() if k not in targets and k != "_aws"}
    meta = {k: v for k, v in aws.items() if k != "CloudWatchMetrics"}
    out: list[dict[str, Any]] = []
    for round_ in range(math.ceil(longest / MAX_VALUES_PER_METRIC)):
        lo, hi = round_ * MAX_VALUES_PER_METRIC, (round_ + 1) * MAX_VALUES_PER_METRIC
        # (directive, definition, this round's value) for every metric with values left in this round.
        entries = []
        for directive in directives:
            for definition in directive.metrics:
                part = _value_slice(doc[definition["Name"]], lo, hi)
                if part is not None:
                    entries.append((directive, definition, part))
        for start in range(0, len(entries), MAX_METRICS_PER_DOCUMENT):
            chunk = entries[start : start + MAX_METRICS_PER_DOCUMENT]
            piece = dict(base)
            grouped: dict[int, tuple[_Directive, list[dict[str, Any]]]] = {}
            for directive, definition, value in chunk:
                piece[definition["Name"]] = value
                grouped.setdefault(id(directive), (directive, []))[1].append(definition)
            piece["_aws"] = {**meta, "CloudWatchMetrics": [_directive_json(d, ms) for d, ms in grouped.values()]}
            out.append(piece)
    return out


def to_metrics(doc: dict[str, Any], namespace_tag: str | None) -> list[Metric]:
    """Metric records (distributions of the document's values) for a checked EMF document."""
    aws = doc["_aws"]
    timestamp = aws["Timestamp"] / 1000.0
    out: list[Metric] = []
    for directive in aws["CloudWatchMetrics"]:
        sets: Iterable[list[str]] = directive["Dimensions"] or [[]]
        for keys in sets:
            tags = {k: doc[k] for k in keys}
            if namespace_tag:
                tags[namespace_tag] = directive["Namespace"]
            for definition in directive["Metrics"]:
                out.append(
                    Metric(
                        definition["Name"],
                        "distribution",
                        _distribution_value(doc[definition["Name"]]),
                        dict(tags),
                        timestamp,
                        definition.get("Unit"),
                    )
                )
    return out


def _distribution_value(value: Any) -> Any:
    """A checked metric target as a distribution value (see distribution.py)."""
    if type(value) is list:
        return [float(v) for v in value]
    if type(value) is dict:
        out = {"count": value["Count"], "sum": value["Sum"], "min": value["Min"], "max": value["Max"]}
        if "Values" in value:
            out["values"] = value["Values"]
            out["counts"] = value["Counts"]
        return out
    return [float(value)]
