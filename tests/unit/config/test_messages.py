"""Every error a config can produce is said in our words, with a hint (collector/config/messages.py)."""

from __future__ import annotations

import re
import typing
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from collector.config import ConfigError, parse_config
from collector.config.messages import GENERIC, describe, is_known
from collector.config.model import RootConfig
from collector.registry import load_registry

PLACEHOLDER = re.compile(r"\{[a-z_]+\}")  # a template of messages.py left unfilled
# Wrong values of every kind a YAML file can hold, and edge values for the limits.
WRONG: tuple[Any, ...] = (
    "not a number",
    "12abc",
    "1.5x",
    "maybe",
    "",
    "x" * 5000,
    "http//no scheme",
    "::bad::",
    -1,
    0,
    1.5,
    10**15,
    -(10**15),
    True,
    None,
    [],
    ["a", 1],
    [{"a": 1}] * 3,
    {},
    {"no_such_key": 1},
    {"type": "no-such-kind"},
)


def _models(annotation: Any, seen: set[type]) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation] if annotation not in seen else []
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models(arg, seen)
    return found


def _errors_of(model: type[BaseModel], seen: set[type], depth: int = 0) -> list[dict[str, Any]]:
    """The errors of feeding every wrong value to every field of `model` and of the models it nests."""
    seen.add(model)
    out: list[dict[str, Any]] = []
    for name, info in model.model_fields.items():
        key = info.alias or name
        for value in WRONG:
            try:
                model.model_validate({key: value})
            except ValidationError as exc:
                out += [dict(e) for e in exc.errors()]
            except Exception:  # a validator that fails on a wrong type is a bug elsewhere, not a message
                continue
        if depth < 3:
            for nested in _models(info.annotation, seen):
                out += _errors_of(nested, seen, depth + 1)
    return out


@pytest.fixture(scope="module")
def all_errors() -> list[dict[str, Any]]:
    registry = load_registry()
    seen: set[type] = set()
    errors = _errors_of(RootConfig, seen)
    for cls in registry.plugins.values():
        errors += _errors_of(cls.Config, seen)
    return errors


def test_the_wrong_values_reach_the_usual_error_types(all_errors: list[dict[str, Any]]) -> None:
    # The test is only as good as the kinds of error it provokes: these must be among them.
    kinds = {e["type"] for e in all_errors}
    expected = {"int_parsing", "int_type", "bool_parsing", "string_type", "literal_error", "missing"}
    expected |= {"extra_forbidden", "greater_than_equal", "float_parsing", "list_type", "dict_type"}
    assert expected <= kinds, sorted(expected - kinds)


def test_every_error_type_our_models_raise_has_our_sentence_and_a_hint(all_errors: list[dict[str, Any]]) -> None:
    unknown = sorted({e["type"] for e in all_errors if not is_known(e["type"])})
    assert unknown == [], f"add these pydantic error types to collector/config/messages.py TABLE: {unknown}"
    for err in all_errors:
        message, hint = describe(err)
        if err["type"] in ("value_error", "assertion_error"):
            continue  # our own validators' text (the loader adds the option's description as the hint)
        assert message and message != err["msg"] and "Input should" not in message, err
        assert hint and hint != GENERIC[1] and not PLACEHOLDER.search(message + hint), err


def test_a_limit_and_the_choices_are_named() -> None:
    assert describe({"type": "greater_than_equal", "msg": "", "ctx": {"ge": 1}}) == (
        "is too small: it must be at least 1",
        "write 1 or more",
    )
    message, hint = describe({"type": "literal_error", "msg": "", "ctx": {"expected": "'json' or 'text'"}})
    assert (message, hint) == ("is not one of the allowed values", "write one of: `json` or `text`")


def test_a_type_not_in_the_table_still_gets_our_words() -> None:
    assert describe({"type": "some_future_type", "msg": "Input should be shiny"}) == GENERIC
    # a ctx that lacks a detail: the sentence without it, never a template
    message, hint = describe({"type": "greater_than", "msg": "", "ctx": {}})
    assert (message, hint) == ("is too small", GENERIC[1])


def test_the_report_of_a_config_says_it_our_way() -> None:
    text = """\
inputs:
  demo:
    type: generator
    rate: lots
    batch_size: 1.5
outputs:
  screen:
    type: stdout
    inputs: [demo]
"""
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", load_registry(), environ={})
    assert [i.format() for i in info.value.issues] == [
        "c.yaml:4:11: inputs.demo.rate: must be a number (got 'lots') (hint: write a number such as 1.5 or 10, "
        "without a unit)",
        "c.yaml:5:17: inputs.demo.batch_size: must be a whole number, not a fraction (got 1.5) "
        "(hint: drop the decimal part, e.g. 10 rather than 10.5)",
    ]
