"""The filter processor's conditions, evaluated a column at a time over a whole batch.

A rule's filter becomes a function `batch columns -> list[bool] | None` (None: every record
matches). Field values are read once per batch and field (`Columns`), however many rules use
the field, and each condition is one list comprehension over a column: with 20 rules over a
few fields, a record costs a few attribute lookups and comparisons, not 20 predicate calls.
The per-value tests are the filter processor's own (plugins/processors/filter/processor.py),
so a condition means exactly what it means in a `filter`.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Any

from collector.events import METRICS
from collector_plugins.processors.filter.processor import (
    _COMPARISONS,
    MISSING,
    Condition,
    compare_test,
    contains_test,
    dict_getter,
    equals_test,
    in_test,
    matches_test,
    metric_getter,
)

Mask = list[bool] | None
MaskFn = Callable[["Columns"], Mask]


class Columns:
    """One batch's records and the field columns read from them so far (each read once)."""

    __slots__ = ("_cache", "_getter", "records")

    def __init__(self, kind: str, records: list[Any]) -> None:
        self.records = records
        self._getter = metric_getter if kind == METRICS else dict_getter
        self._cache: dict[str, list[Any]] = {}

    def column(self, path: str) -> list[Any]:
        """The field's value per record (MISSING where absent)."""
        col = self._cache.get(path)
        if col is None:
            records = self.records
            if "." not in path and self._getter is dict_getter:
                # dict.get mapped in C: no Python frame per record.
                col = list(map(dict.get, records, repeat(path, len(records)), repeat(MISSING, len(records))))
            else:
                get = self._getter(path)
                col = [get(r) for r in records]
            self._cache[path] = col
        return col


def _condition_mask(condition: Condition) -> Callable[[list[Any]], list[bool]]:
    op, operand, path = condition.operator, condition.operand, condition.field
    if op == "exists":
        if operand:
            return lambda col: [v is not MISSING for v in col]
        return lambda col: [v is MISSING for v in col]
    if op == "equals" and isinstance(operand, str):
        eq = equals_test(operand)
        # Fast path: text equals text; only values of other types pay the full test (bytes decoded).
        return lambda col: [v == operand or (v.__class__ is not str and v is not MISSING and eq(v)) for v in col]
    if op == "not_equals":
        eq = equals_test(operand)
        return lambda col: [v is MISSING or not eq(v) for v in col]
    if op == "in" and all(isinstance(t, str) for t in operand):
        return _in_texts(list(operand))
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
    del path
    # The filter's tests answer False for MISSING (it is neither text, a number nor a list).
    return lambda col: list(map(test, col))


def compile_mask(
    conditions: list[Condition], match: str, extra: list[Callable[[Columns], list[bool]]] | None = None
) -> MaskFn:
    """The batch mask of `conditions` (combined by `match`) and, always and-ed, the `extra` masks."""
    parts: list[Callable[[Columns], list[bool]]] = []
    for condition in conditions:
        parts.append(_column_mask(_condition_mask(condition), condition.field))
    if len(parts) > 1:
        combine: Callable[[Any], bool] = all if match == "all" else any
        members = tuple(parts)
        parts = [lambda cols: list(map(combine, zip(*(p(cols) for p in members), strict=True)))]
    parts.extend(extra or ())
    if not parts:
        return lambda cols: None
    if len(parts) == 1:
        return parts[0]
    first, *rest = parts

    def both(cols: Columns) -> list[bool]:
        mask = first(cols)
        for part in rest:
            mask = [a and b for a, b in zip(mask, part(cols), strict=True)]
        return mask

    return both


def _in_texts(targets: list[str]) -> Callable[[list[Any]], list[bool]]:
    """`in` over text targets: a set lookup for text values; other values take the filter's full test."""
    texts = frozenset(targets)
    test = in_test(list(targets))
    return lambda col: [v in texts if v.__class__ is str else test(v) for v in col]


def _column_mask(fn: Callable[[list[Any]], list[bool]], path: str) -> Callable[[Columns], list[bool]]:
    return lambda cols: fn(cols.column(path))


def in_values_mask(
    path: str, values: list[str], negate: bool, ignore_null: bool = False
) -> Callable[[Columns], list[bool]]:
    """`path` is (negate: is not) one of `values` (text; bytes decoded). For blacklist / whitelist."""
    within = _in_texts(list(values))
    if not negate:
        return lambda cols: within(cols.column(path))
    if ignore_null:
        return lambda cols: [
            v is not MISSING and v is not None and not hit
            for v, hit in zip(cols.column(path), within(cols.column(path)), strict=True)
        ]
    return lambda cols: [
        v is MISSING or not hit for v, hit in zip(cols.column(path), within(cols.column(path)), strict=True)
    ]


def group_key(value: Any) -> str:
    """A query_key value as the group's name (text; missing fields group under `(none)`)."""
    if value.__class__ is str:
        return value
    if value is MISSING or value is None:
        return "(none)"
    if isinstance(value, bytes | bytearray):
        return value.decode("utf-8", "replace")
    return str(value)
