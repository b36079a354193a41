"""The format of pipeline unit tests (`collector test`), and its validation.

A test is written under `tests:`, either in the config file itself or in a
separate YAML file (docs/testing-pipelines.md is the reference). Test files are
read with the config's own YAML reader (collector/config/source.py), so every
problem is reported like a config error: file:line, key path, hint.

Checks beyond the shape: `insert_at` names an input or processor of the config,
`extract_from` a processor or output, `no_outputs_from` a processor or output,
and each of those is downstream of `insert_at` (else it could never receive a
record and the test would pass or fail for the wrong reason).
"""

from __future__ import annotations

import datetime as dt
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from collector.config.errors import ConfigIssue, did_you_mean
from collector.config.loader import _pydantic_issues
from collector.config.source import SourceMap, load_yaml
from collector.graph import Graph

TYPE_NAMES = ("string", "bytes", "integer", "float", "number", "boolean", "null", "object", "list")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputRecord(_Strict):
    """One record injected at `insert_at`: exactly one of the four forms."""

    log: dict[str, Any] | None = Field(None, description="A log record given as an object (its fields).")
    line: str | None = Field(
        None, description="A raw log line, as an input reads it: `message` (bytes) and `timestamp` (the clock)."
    )
    metric: dict[str, Any] | None = Field(
        None, description="A metric: name, type, value, and optionally tags, timestamp, unit, interval."
    )
    trace: dict[str, Any] | None = Field(None, description="A trace document (an X-Ray segment).")

    @model_validator(mode="after")
    def _one_form(self) -> InputRecord:
        given = [k for k in ("log", "line", "metric", "trace") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `log`, `line`, `metric`, `trace` per input record")
        if self.metric is not None:
            missing = [k for k in ("name", "type", "value") if k not in self.metric]
            if missing:
                raise ValueError(f"a metric needs {', '.join(missing)}")
        return self

    @property
    def kind(self) -> str:
        if self.metric is not None:
            return "metrics"
        return "traces" if self.trace is not None else "logs"


class Condition(_Strict):
    """A check on one field of every record extracted: exactly one test among equals/exists/matches/type."""

    field: str = Field(description="Field path: `level`, `user.id`, `items[0]`, `tags.host` (a metric's).")
    equals: Any = Field(None, description="The field equals this value.")
    exists: bool | None = Field(None, description="true: the field is there; false: it is not.")
    matches: str | None = Field(None, description="The field (a string) matches this regular expression.")
    type: Literal[TYPE_NAMES] | None = Field(None, description="The field's type.")  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        given = [k for k in ("equals", "exists", "matches", "type") if k in self.model_fields_set]
        if len(given) != 1:
            raise ValueError("give exactly one of `equals`, `exists`, `matches`, `type` per condition")
        if self.matches is not None:
            try:
                re.compile(self.matches)
            except re.error as exc:
                raise ValueError(f"`matches` is not a valid regular expression: {exc}") from None
        return self


class Expectation(_Strict):
    extract_from: str = Field(description="The processor or output whose records are checked.")
    records: list[dict[str, Any]] | None = Field(
        None, description="Exactly these records, in this order (logs and traces as objects, metrics as dicts)."
    )
    conditions: list[Condition] = Field(default_factory=list, description="Checks every record must pass.")
    count: int | None = Field(None, ge=0, description="How many records must come out.")

    @model_validator(mode="after")
    def _something(self) -> Expectation:
        if self.records is None and not self.conditions and self.count is None:
            raise ValueError("give `records`, `conditions` or `count` (else nothing is checked)")
        return self


class PipelineTest(_Strict):
    name: str = Field(min_length=1, description="Shown in PASS/FAIL lines.")
    insert_at: str = Field(description="An input or processor: the records are injected as its output.")
    now: dt.datetime | float | str | None = Field(
        None, description="The clock while the test runs (RFC 3339 or epoch seconds); default: --now, or real."
    )
    inputs: list[InputRecord] = Field(min_length=1, description="The records to inject.")
    outputs: list[Expectation] = Field(default_factory=list, description="What must come out where.")
    no_outputs_from: list[str] = Field(default_factory=list, description="Components that must pass nothing on.")

    @field_validator("now")
    @classmethod
    def _clock(cls, value: dt.datetime | float | str | None) -> dt.datetime | float | str | None:
        parse_now(value)  # raises ValueError on a string that is no time
        return value

    @model_validator(mode="after")
    def _checks_something(self) -> PipelineTest:
        if not self.outputs and not self.no_outputs_from:
            raise ValueError("give `outputs` or `no_outputs_from` (else nothing is checked)")
        return self


def parse_now(value: dt.datetime | str | float | None) -> float | None:
    """Epoch seconds from `2025-11-26T09:41:00Z` or a number; None stays None (the real clock)."""
    if value is None or isinstance(value, int | float):
        return value
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"`{value}` is not an RFC 3339 time nor epoch seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


class TestFile(_Strict):
    tests: list[PipelineTest] = Field(min_length=1, description="The pipeline tests.")


@dataclass(frozen=True)
class LoadedTests:
    tests: list[tuple[str, PipelineTest]]  # (file, test)
    issues: list[ConfigIssue]


def read_tests(path: str, graph: Graph, only_tests_key: bool = False) -> LoadedTests:
    """The tests of one file (a test file, or the config file when `only_tests_key`), checked against `graph`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not valid UTF-8"
        return LoadedTests([], [ConfigIssue((), f"cannot read test file: {why}", file=path)])
    loaded = load_yaml(text, path)
    if loaded.issues or loaded.data is None:
        return LoadedTests([], loaded.issues)
    data, smap = loaded.data, loaded.source_map
    if not isinstance(data, dict):
        return LoadedTests([], [_at(smap, (), "a test file must be a mapping with a `tests:` list")])
    if only_tests_key:
        if "tests" not in data:
            return LoadedTests([], [])
        data = {"tests": data["tests"]}
    try:
        parsed = TestFile.model_validate(data)
    except ValidationError as exc:
        return LoadedTests([], [_with_hint(i) for i in _pydantic_issues(exc, TestFile, (), smap)])
    issues: list[ConfigIssue] = []
    for i, test in enumerate(parsed.tests):
        issues.extend(_check_names(test, graph, smap, ("tests", i)))
    return LoadedTests([(path, t) for t in parsed.tests], issues)


def _check_names(test: PipelineTest, graph: Graph, smap: SourceMap, base: tuple[str | int, ...]) -> list[ConfigIssue]:
    comps = graph.components
    producers = [n for n, s in comps.items() if s.section != "outputs"]
    consumers = [n for n, s in comps.items() if s.section != "inputs"]
    issues = []
    if test.insert_at not in producers:
        why = "is an output (records are injected as a component's output)" if test.insert_at in comps else ""
        issues.append(
            _at(
                smap,
                (*base, "insert_at"),
                f"`{test.insert_at}` {why or 'is not an input or processor of the config'}",
                did_you_mean(test.insert_at, producers),
            )
        )
        return issues
    below = downstream(graph, test.insert_at)
    named: list[tuple[tuple[str | int, ...], str]] = [
        (("outputs", j, "extract_from"), e.extract_from) for j, e in enumerate(test.outputs)
    ]
    named += [(("no_outputs_from", j), n) for j, n in enumerate(test.no_outputs_from)]
    for path, name in named:
        if name not in consumers:
            issues.append(
                _at(smap, (*base, *path), f"`{name}` is not a processor or output", did_you_mean(name, consumers))
            )
        elif name not in below:
            issues.append(
                _at(
                    smap,
                    (*base, *path),
                    f"`{name}` is not downstream of `{test.insert_at}`: it can receive nothing",
                    f"components downstream: {', '.join(sorted(below)) or 'none'}",
                )
            )
    return issues


def _with_hint(issue: ConfigIssue) -> ConfigIssue:
    """An unknown key inside a list (the config's helper stops at list indexes): name the valid ones."""
    if issue.hint is not None or not issue.message.startswith("unknown option"):
        return issue
    model: Any = TestFile
    for part in issue.path[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        model = _model_in(info.annotation) if info is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return issue
    known = list(model.model_fields)
    hint = did_you_mean(str(issue.path[-1]), known) or f"valid options: {', '.join(sorted(known))}"
    return ConfigIssue(issue.path, issue.message, hint, issue.file, issue.line, issue.column)


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def downstream(graph: Graph, start: str) -> set[str]:
    """Every component that `start`'s records can reach."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for spec in graph.consumers(todo.pop()):
            if spec.name not in seen:
                seen.add(spec.name)
                todo.append(spec.name)
    return seen


def _at(smap: SourceMap, path: tuple[str | int, ...], message: str, hint: str | None = None) -> ConfigIssue:
    line, column = smap.locate(path)
    return ConfigIssue(path, message, hint, smap.file, line, column)
