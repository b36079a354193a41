"""`filter`: keep or drop records by conditions on their fields.

The conditions are compiled once, at construction, into plain closures (one
per condition, then one combining them), so a batch costs one list
comprehension calling one predicate per record: no dispatch on operator names,
no regex compilation and no config lookups on the hot path.

Field values are looked up by path: `level`, or `kubernetes.namespace` walking
nested dicts (a record that literally has the key `kubernetes.namespace` is
matched by that key first; a numeric part indexes a list). On metrics the fields
are `name`, `type`, `value`, `unit`, `timestamp` and `tags.<tag>`.

`bytes` values (raw messages) are decoded as UTF-8, invalid sequences replaced,
before text comparisons (`equals`, `not_equals`, `in`, `matches`, `contains`)
and parsed as numbers for `gt` / `lt` / `gte` / `lte`, like text values.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from collector.api import ComponentContext, Processor, ProcessorConfig
from collector.config.messages import HINT_SEPARATOR
from collector.events import KINDS, METRICS, Batch

Scalar = str | int | float | bool | None

OPERATORS = ("equals", "not_equals", "in_", "matches", "contains", "exists", "gt", "lt", "gte", "lte")
_OP_NAMES = {op: op.rstrip("_") for op in OPERATORS}
_METRIC_ATTRIBUTES = ("name", "type", "value", "unit", "timestamp")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What a field lookup returns when the record has no such field."""


class Condition(BaseModel):
    """One test on one field: `field` plus exactly one operator."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)

    field: str = Field(
        min_length=1,
        description="Field path: a top-level key, or a dotted path into nested objects; on metrics "
        "`name`, `type`, `value`, `unit`, `timestamp` or `tags.<tag>`.",
        examples=["level", "kubernetes.namespace", "tags.status"],
    )
    equals: Scalar = Field(
        default=None,
        description="The field equals this value (booleans and numbers compare with their own kind only).",
        examples=["error", 500],
    )
    not_equals: Scalar = Field(
        default=None,
        description="The field is missing or differs from this value.",
        examples=["debug"],
    )
    in_: list[Scalar] | None = Field(
        default=None,
        alias="in",
        min_length=1,
        description="The field equals one of these values.",
        examples=[["error", "fatal"]],
    )
    matches: str | None = Field(
        default=None,
        description="The field (text; numbers are matched as written) contains a match of this regular "
        "expression (Python syntax; anchor with ^ and $ for a full match).",
        examples=["^5\\d\\d$", "(?i)timeout"],
    )
    contains: str | None = Field(
        default=None,
        description="The field (text) contains this substring, or (a list) has this element.",
        examples=["timeout"],
    )
    exists: bool | None = Field(
        default=None,
        description="true: the record has the field (even if null); false: it does not.",
        examples=[True],
    )
    gt: float | None = Field(default=None, description="The field is a number greater than this.", examples=[499])
    lt: float | None = Field(default=None, description="The field is a number less than this.", examples=[100])
    gte: float | None = Field(
        default=None, description="The field is a number greater than or equal to this.", examples=[1.5]
    )
    lte: float | None = Field(
        default=None, description="The field is a number less than or equal to this.", examples=[0]
    )

    @field_validator("gt", "lt", "gte", "lte", mode="before")
    @classmethod
    def _check_number(cls, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"must be a number, not {value!r}")
        return value

    @field_validator("matches")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _check_one_operator(self) -> Condition:
        given = [op for op in OPERATORS if op in self.model_fields_set]
        if len(given) != 1:
            names = ", ".join(_OP_NAMES[op] for op in OPERATORS)
            found = ", ".join(_OP_NAMES[op] for op in given) or "none"
            raise ValueError(
                f"condition on {self.field!r} needs exactly one operator of: {names} (found: {found})"
                f"{HINT_SEPARATOR}one condition per list item, e.g. `{{field: level, equals: error}}`"
            )
        return self

    @property
    def operator(self) -> str:
        """The operator's config name (`in`, not `in_`)."""
        return next(_OP_NAMES[op] for op in OPERATORS if op in self.model_fields_set)

    @property
    def operand(self) -> Any:
        return next(getattr(self, op) for op in OPERATORS if op in self.model_fields_set)


class FilterConfig(ProcessorConfig):
    type: Literal["filter"] = Field(description="Keeps or drops records by conditions.", examples=["filter"])
    action: Literal["keep", "drop"] = Field(
        default="keep",
        description="`keep`: pass on the records that match, drop the others; `drop`: drop the records that match.",
        examples=["keep", "drop"],
    )
    match: Literal["all", "any"] = Field(
        default="all",
        description="A record matches when `all` conditions hold, or when `any` of them does.",
        examples=["all", "any"],
    )
    conditions: list[Condition] = Field(
        min_length=1,
        description="The conditions: each a `field` and one operator (equals, not_equals, in, matches, "
        "contains, exists, gt, lt, gte, lte).",
        examples=[[{"field": "level", "in": ["error", "fatal"]}, {"field": "kubernetes.namespace", "equals": "prod"}]],
    )


# --------------------------------------------------------------------------- compilation

Getter = Callable[[Any], Any]
Test = Callable[[Any], bool]
Predicate = Callable[[Any], bool]


def _text(value: Any) -> str | None:
    """A value as text for text comparisons, or None if it is not text."""
    if type(value) is str:
        return value
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return None


def _number(value: Any) -> float | int | None:
    """A value as a number for numeric comparisons, or None if it is not one."""
    t = type(value)
    if t is int or t is float:
        return value
    if t is bool or value is None:
        return None
    if isinstance(value, str | bytes | bytearray):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, int | float):
        return value
    return None


def dict_getter(path: str) -> Getter:
    """Look up `path` in a dict record; MISSING when absent."""
    if "." not in path:
        return lambda r: r.get(path, MISSING)
    parts = tuple(int(p) if p.isdigit() else p for p in path.split("."))

    def get(r: dict[str, Any]) -> Any:
        value = r.get(path, MISSING)
        if value is not MISSING:
            return value
        value = r
        for part in parts:
            if isinstance(value, dict):
                value = value.get(part if type(part) is str else str(part), MISSING)
            elif isinstance(value, list) and type(part) is int:
                value = value[part] if part < len(value) else MISSING
            else:
                return MISSING
            if value is MISSING:
                return MISSING
        return value

    return get


def metric_getter(path: str) -> Getter:
    """Look up `path` on a Metric; MISSING when absent."""
    if path in _METRIC_ATTRIBUTES:
        attribute = operator.attrgetter(path)
        if path == "unit":
            return lambda m: MISSING if m.unit is None else m.unit
        return attribute
    if path == "tags":
        return operator.attrgetter("tags")
    if path.startswith("tags."):
        tag = path[5:]
        return lambda m: m.tags.get(tag, MISSING)
    return lambda m: MISSING


def equals_test(target: Scalar) -> Test:
    """value -> whether it equals `target`; text compares with text, numbers with numbers."""
    if target is None:
        return lambda v: v is None
    if isinstance(target, bool):
        return lambda v: v is target
    if isinstance(target, str):
        return lambda v: v == target or (isinstance(v, bytes | bytearray) and v.decode("utf-8", "replace") == target)
    return lambda v: v == target and type(v) is not bool and (type(v) is int or type(v) is float)


def in_test(targets: list[Scalar]) -> Test:
    texts = frozenset(t for t in targets if isinstance(t, str))
    numbers = frozenset(t for t in targets if isinstance(t, int | float) and not isinstance(t, bool))
    bools = tuple(t for t in targets if isinstance(t, bool))
    has_none = None in targets

    def test(v: Any) -> bool:
        t = type(v)
        if t is str:
            return v in texts
        if t is int or t is float:
            return v in numbers
        if t is bool:
            return v in bools
        if v is None:
            return has_none
        text = _text(v)
        return text is not None and text in texts

    return test


def matches_test(pattern: str) -> Test:
    search = re.compile(pattern).search

    def test(v: Any) -> bool:
        if type(v) is str:
            return search(v) is not None
        if isinstance(v, bytes | bytearray):
            return search(v.decode("utf-8", "replace")) is not None
        if type(v) is int or type(v) is float:
            return search(str(v)) is not None
        return False

    return test


def contains_test(needle: str) -> Test:
    def test(v: Any) -> bool:
        if type(v) is str:
            return needle in v
        if isinstance(v, bytes | bytearray):
            return needle in v.decode("utf-8", "replace")
        if isinstance(v, list | tuple):
            return needle in v
        return False

    return test


def compare_test(op: Callable[[Any, Any], bool], bound: float) -> Test:
    def test(v: Any) -> bool:
        t = type(v)
        if t is int or t is float:
            return op(v, bound)
        n = _number(v)
        return n is not None and op(n, bound)

    return test


_COMPARISONS = {"gt": operator.gt, "lt": operator.lt, "gte": operator.ge, "lte": operator.le}


def compile_condition(condition: Condition, get: Getter) -> Predicate:
    """A predicate over records for one condition, given how to read its field."""
    op, operand = condition.operator, condition.operand
    if op == "exists":
        if operand:
            return lambda r: get(r) is not MISSING
        return lambda r: get(r) is MISSING
    if op == "not_equals":
        eq = equals_test(operand)

        def differs(r: Any) -> bool:
            v = get(r)
            return v is MISSING or not eq(v)

        return differs
    if op == "equals":
        test = equals_test(operand)
    elif op == "in":
        test = in_test(operand)
    elif op == "matches":
        test = matches_test(operand)
    elif op == "contains":
        test = contains_test(operand)
    else:
        test = compare_test(_COMPARISONS[op], operand)

    def holds(r: Any) -> bool:
        v = get(r)
        return v is not MISSING and test(v)

    return holds


def combine(predicates: list[Predicate], match: str) -> Predicate:
    """One predicate: all of `predicates` (match: all) or any of them (match: any), short-circuiting."""
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        if match == "all":
            return lambda r: first(r) and second(r)
        return lambda r: first(r) or second(r)
    preds = tuple(predicates)
    # Plain loops rather than all()/any() over a generator: no generator object per record.
    if match == "all":

        def every(r: Any) -> bool:
            for p in preds:  # noqa: SIM110
                if not p(r):
                    return False
            return True

        return every

    def some(r: Any) -> bool:
        for p in preds:  # noqa: SIM110
            if p(r):
                return True
        return False

    return some


def compile_filter(config: FilterConfig, metrics: bool) -> Predicate:
    """The record predicate of a filter: True means "this record matches"."""
    getter = metric_getter if metrics else dict_getter
    return combine([compile_condition(c, getter(c.field)) for c in config.conditions], config.match)


# --------------------------------------------------------------------------- the processor


class Filter(Processor):
    type_name: ClassVar[str] = "filter"
    description: ClassVar[str] = "Keeps or drops records by conditions on their fields."
    Config: ClassVar[type[FilterConfig]] = FilterConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    emits: ClassVar[frozenset[str]] = frozenset(KINDS)
    mutates_records: ClassVar[bool] = False

    config: FilterConfig

    def __init__(self, config: FilterConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.filtered = 0
        """Records removed so far (not errors: the runtime reports this count)."""
        self._keep = config.action == "keep"
        self._record_matches = compile_filter(config, metrics=False)
        self._metric_matches = compile_filter(config, metrics=True)

    def counters(self) -> dict[str, float]:
        return {"filtered_events": self.filtered}

    def process(self, batch: Batch) -> Batch | None:
        records = batch.records
        matches = self._metric_matches if batch.kind == METRICS else self._record_matches
        if self._keep:
            kept = [r for r in records if matches(r)]
        else:
            kept = [r for r in records if not matches(r)]
        removed = len(records) - len(kept)
        if not removed:
            return batch
        self.filtered += removed
        self.ctx.loss("filtered", removed)  # in the loss ledger: not delivered, on purpose
        if not kept:
            return None
        # Scaled, not recounted: nbytes is an estimate and recounting would touch every record again.
        return batch.with_records(kept, batch.nbytes * len(kept) // len(records))
