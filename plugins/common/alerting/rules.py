"""Alert rules: one pydantic model per rule type, inline in the `alert` output or in rule files.

A rule file is YAML with a `rules:` list. It is read with the config loader's own YAML reader
(collector/config/source.py), so every problem in it names file:line:column, the key path
(`rules[2].timeframe`) and a hint, exactly like a problem in the main config.
"""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from collector.config.errors import ConfigError, ConfigIssue
from collector.config.messages import HINT_SEPARATOR
from collector.config.source import load_yaml
from collector.units import Duration
from collector_plugins.processors.filter.processor import Condition


class Silence(BaseModel):
    """A window (UTC) in which the rule's notifications are held back; states still change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str = Field(
        description="Start of the window (ISO 8601; UTC unless it says).", examples=["2026-12-24T22:00:00Z"]
    )
    end: str = Field(description="End of the window (ISO 8601; UTC unless it says).", examples=["2026-12-25T06:00:00Z"])

    @field_validator("start", "end", mode="before")
    @classmethod
    def _check_time(cls, value: Any) -> Any:
        if isinstance(value, datetime.datetime | datetime.date):  # YAML reads unquoted timestamps itself
            value = value.isoformat()
        if not isinstance(value, str) or _epoch(value) is None:
            raise ValueError(f"not an ISO 8601 time{HINT_SEPARATOR}write e.g. 2026-12-24T22:00:00Z")
        return value

    @model_validator(mode="after")
    def _check_order(self) -> Silence:
        if (_epoch(self.end) or 0) <= (_epoch(self.start) or 0):
            raise ValueError(f"silence ends before it starts{HINT_SEPARATOR}`end` must be after `start`")
        return self

    def covers(self, now: float) -> bool:
        return (_epoch(self.start) or 0) <= now < (_epoch(self.end) or 0)


def _epoch(text: str) -> float | None:
    try:
        when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$",
        description="Unique rule name: names its state and its notifications.",
        examples=["api_errors"],
    )
    description: str = Field("", description="Free text carried in every notification.", examples=["5xx burst"])
    filter: list[Condition] = Field(
        default_factory=list,
        description="Which records the rule looks at: the `filter` processor's conditions (none: every record).",
        examples=[[{"field": "level", "equals": "error"}]],
    )
    match: Literal["all", "any"] = Field(
        "all", description="A record matches when `all` conditions hold, or `any` does.", examples=["any"]
    )
    query_key: str | None = Field(
        None,
        description="Group by this field (dotted path; on metrics `tags.<tag>`): one state per value.",
        examples=["host", "tags.service"],
    )
    max_groups: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Most groups kept per rule; records of further groups are counted (`group_overflow`).",
        examples=[1000],
    )
    realert: Duration = Field(
        0.0,
        description="While a group stays in ALARM, remind every this long (0: notify once per alarm).",
        examples=["10m"],
    )
    aggregation: Duration = Field(
        0.0,
        description="Hold this rule's notifications this long and send one summary of them (0: send each).",
        examples=["5m"],
    )
    silence: list[Silence] = Field(
        default_factory=list,
        description="Windows in which notifications are not sent (counted as `silenced`).",
        examples=[[{"start": "2026-12-24T22:00:00Z", "end": "2026-12-25T06:00:00Z"}]],
    )
    notify_resolved: bool = Field(True, description="Also notify when a group goes back to OK.", examples=[False])
    max_examples: int = Field(3, ge=0, le=100, description="Matching records quoted in a notification.", examples=[3])
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Fixed fields copied into every notification (severity, team, runbook).",
        examples=[{"severity": "critical", "runbook": "https://wiki/runbooks/api"}],
    )

    def fingerprint(self) -> str:
        """Changes whenever the rule's definition does: state is kept across reloads only while it is equal."""
        return hashlib.sha256(orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]

    def silenced(self, now: float) -> bool:
        return any(s.covers(now) for s in self.silence)


class ThresholdRule(_Rule):
    """A CloudWatch alarm: a statistic per period compared with a threshold, M of N periods breaching."""

    type: Literal["threshold"] = Field(description="CloudWatch-style alarm.", examples=["threshold"])
    field: str | None = Field(
        None,
        description="Numeric field whose statistic is compared (metrics: `value`); unset: the record count.",
        examples=["value", "latency_ms"],
    )
    statistic: Literal["count", "sum", "avg", "min", "max"] = Field(
        "count", description="What one period's datapoint is.", examples=["avg"]
    )
    comparison: Literal["gt", "gte", "lt", "lte"] = Field(
        "gt", description="Datapoint compared with `threshold`: breaching when it holds.", examples=["gte"]
    )
    threshold: float = Field(description="The value compared with.", examples=[90])
    period: Duration = Field(60.0, description="Length of one datapoint's period.", examples=["1m"])
    evaluation_periods: int = Field(1, ge=1, le=1440, description="N: periods looked at.", examples=[5])
    datapoints_to_alarm: int | None = Field(
        None, ge=1, description="M: breaching datapoints among N that put the alarm in ALARM (default N).", examples=[3]
    )
    treat_missing_data: Literal["missing", "ignore", "breaching", "notBreaching"] = Field(
        "missing",
        description="Periods without data (CloudWatch's TreatMissingData): `missing` (all missing -> "
        "INSUFFICIENT_DATA), `ignore` (keep the state), `breaching`, `notBreaching`.",
        examples=["notBreaching"],
    )

    @model_validator(mode="after")
    def _check(self) -> ThresholdRule:
        if self.period < 1:
            raise ValueError(f"period must be at least 1s{HINT_SEPARATOR}write e.g. `period: 10s`")
        if self.statistic != "count" and self.field is None:
            raise ValueError(
                f"statistic `{self.statistic}` needs a `field`{HINT_SEPARATOR}add `field: value` (metrics) "
                "or a numeric field of the records"
            )
        if self.datapoints_to_alarm is not None and self.datapoints_to_alarm > self.evaluation_periods:
            raise ValueError(
                f"datapoints_to_alarm ({self.datapoints_to_alarm}) exceeds evaluation_periods "
                f"({self.evaluation_periods}){HINT_SEPARATOR}M of N needs M <= N"
            )
        return self

    @property
    def needed(self) -> int:
        return self.datapoints_to_alarm or self.evaluation_periods


class _Windowed(_Rule):
    timeframe: Duration = Field(60.0, description="The sliding window counted over.", examples=["5m"])

    @model_validator(mode="after")
    def _check_timeframe(self) -> _Windowed:
        if self.timeframe < 1:
            raise ValueError(f"timeframe must be at least 1s{HINT_SEPARATOR}write e.g. `timeframe: 1m`")
        return self


class FrequencyRule(_Windowed):
    """At least `num_events` matching records within `timeframe`."""

    type: Literal["frequency"] = Field(description="N matching records in T.", examples=["frequency"])
    num_events: int = Field(ge=1, description="Matching records within `timeframe` that fire.", examples=[50])


class SpikeRule(_Windowed):
    """The count in the last `timeframe` against the one before it (ElastAlert's spike)."""

    type: Literal["spike"] = Field(description="Rate against the previous window.", examples=["spike"])
    spike_height: float = Field(gt=1, description="Ratio current/reference (or its inverse) that fires.", examples=[3])
    spike_type: Literal["up", "down", "both"] = Field("both", description="Which direction fires.", examples=["up"])
    threshold_ref: int = Field(
        0, ge=0, description="Minimum count in the reference window for the rule to fire.", examples=[10]
    )
    threshold_cur: int = Field(
        0, ge=0, description="Minimum count in the current window for the rule to fire.", examples=[10]
    )


class FlatlineRule(_Windowed):
    """Fewer than `threshold` matching records within `timeframe`: a stream went silent."""

    type: Literal["flatline"] = Field(description="Fewer than N records in T.", examples=["flatline"])
    threshold: int = Field(ge=1, description="Fewer matching records than this within `timeframe` fire.", examples=[1])


class AnyRule(_Windowed):
    """Every matching record fires; the group is back to OK after `timeframe` without one."""

    type: Literal["any"] = Field(description="Any matching record.", examples=["any"])


class BlacklistRule(_Windowed):
    """`compare_key` has one of the listed values."""

    type: Literal["blacklist"] = Field(description="A field has a forbidden value.", examples=["blacklist"])
    compare_key: str = Field(min_length=1, description="Field compared.", examples=["user"])
    blacklist: list[str] = Field(min_length=1, description="Values that fire.", examples=[["root", "admin"]])


class WhitelistRule(_Windowed):
    """`compare_key` has a value not in the list."""

    type: Literal["whitelist"] = Field(description="A field has a value not allowed.", examples=["whitelist"])
    compare_key: str = Field(min_length=1, description="Field compared.", examples=["country"])
    whitelist: list[str] = Field(min_length=1, description="Values allowed.", examples=[["FR", "DE"]])
    ignore_null: bool = Field(False, description="A record without the field (or null) does not fire.", examples=[True])


class NewTermRule(_Windowed):
    """A value of `field` not seen within `terms_window`; each new term is its own group."""

    type: Literal["new_term"] = Field(description="A value not seen before.", examples=["new_term"])
    field: str = Field(min_length=1, description="Field whose values are tracked.", examples=["user_agent"])
    terms_window: Duration = Field(
        7 * 86400.0, description="A term not seen for this long is forgotten (new again).", examples=["7d"]
    )
    max_terms: int = Field(
        10000, ge=1, le=1_000_000, description="Most terms remembered; the least recent are forgotten.", examples=[1000]
    )
    learn_for: Duration = Field(
        0.0, description="After the rule starts, learn terms for this long without firing.", examples=["10m"]
    )

    @model_validator(mode="after")
    def _check_group(self) -> NewTermRule:
        if self.query_key is not None:
            raise ValueError(f"new_term takes no query_key{HINT_SEPARATOR}each new term is its own group")
        return self


Rule = Annotated[
    ThresholdRule | FrequencyRule | SpikeRule | FlatlineRule | AnyRule | BlacklistRule | WhitelistRule | NewTermRule,
    Field(discriminator="type"),
]
RULE_TYPES = ("threshold", "frequency", "spike", "flatline", "new_term", "any", "blacklist", "whitelist")


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(min_length=1, description="The rules.", examples=[[]])


_RULE_LIST: TypeAdapter[list[Any]] = TypeAdapter(list[Rule])


def load_rule_file(path: str | Path, environ: dict[str, str] | None = None) -> list[Any]:
    """The rules of one file; `ConfigError` with file:line, key path and hint for every problem."""
    from collector.config.loader import _pydantic_issues  # the loader's own wording of pydantic errors

    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue((), f"cannot read rule file: {exc.strerror}", file=file)]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue((), "rule file is not valid UTF-8", file=file)]) from None
    loaded = load_yaml(text, file, environ)
    if loaded.issues or loaded.data is None:
        raise ConfigError(loaded.issues)
    try:
        parsed = RuleFile.model_validate(loaded.data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_issues(without_type_tags(exc), RuleFile, (), loaded.source_map)) from None
    check_unique(parsed.rules, file)
    return list(parsed.rules)


def without_type_tags(exc: ValidationError) -> ValidationError:
    """The errors with the rule type pydantic puts in a location (`rules.1.frequency.num_events`) taken
    out, so the location is the key path the user wrote (`rules[1].num_events`) and has a line."""
    details: list[Any] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        cleaned = tuple(
            part for i, part in enumerate(loc) if not (part in RULE_TYPES and i > 0 and isinstance(loc[i - 1], int))
        )
        detail: dict[str, Any] = {"type": err["type"], "loc": cleaned, "input": err.get("input")}
        if "ctx" in err:
            detail["ctx"] = err["ctx"]
        details.append(detail)
    try:
        return ValidationError.from_exception_data(exc.title, details)
    except (TypeError, ValueError, KeyError):  # an error type that cannot be rebuilt: keep pydantic's
        return exc


def check_unique(rules: list[Any], where: str) -> None:
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ConfigError(
                [ConfigIssue((), f"rule name `{rule.name}` is used twice", "give every rule its own name", file=where)]
            )
        seen.add(rule.name)
