"""Pydantic's validation errors said in our words, each with a hint.

pydantic's own English ("Input should be a valid integer, unable to parse string as an
integer") says what the parser wanted, not what the operator should write. Every error
type a config can produce maps here to a sentence about the option and a hint on what
to write instead; the error's `ctx` (a limit, the allowed words, a pattern) fills in the
details. The value itself is never part of the sentence: the loader adds `(got ...)` only
where the value may be shown (not a secret, not from `${VAR}`).

A type missing from the table still gets our words (`GENERIC`) and a hint, never
pydantic's sentence; tests/unit/test_config_messages.py feeds wrong values to every
field of every plugin's schema and fails on any type that falls through to it, so the
table grows with the schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# type -> (message, hint); `{name}` fields come from the error's ctx.
TABLE: dict[str, tuple[str, str]] = {
    # numbers
    "int_parsing": ("must be a whole number", "write digits only, e.g. 10, without a unit"),
    "int_type": ("must be a whole number", "write digits only, e.g. 10"),
    "int_from_float": ("must be a whole number, not a fraction", "drop the decimal part, e.g. 10 rather than 10.5"),
    "float_parsing": ("must be a number", "write a number such as 1.5 or 10, without a unit"),
    "float_type": ("must be a number", "write a number such as 1.5 or 10"),
    "finite_number": ("must be a finite number", "write an ordinary number, not inf or nan"),
    "greater_than": ("is too small: it must be more than {gt}", "write a number above {gt}"),
    "greater_than_equal": ("is too small: it must be at least {ge}", "write {ge} or more"),
    "less_than": ("is too large: it must be less than {lt}", "write a number below {lt}"),
    "less_than_equal": ("is too large: it must be at most {le}", "write {le} or less"),
    "multiple_of": ("must be a multiple of {multiple_of}", "round it to a multiple of {multiple_of}"),
    "decimal_parsing": ("must be a number", "write a number such as 1.5"),
    "decimal_type": ("must be a number", "write a number such as 1.5"),
    # booleans
    "bool_parsing": ("must be true or false", "write true or false"),
    "bool_type": ("must be true or false", "write true or false"),
    # text
    "string_type": ("must be text", "write a single value; quote it if YAML reads it as a number, list or map"),
    "string_too_short": ("is too short: it needs at least {min_length} characters", "write a longer value"),
    "string_too_long": ("is too long: at most {max_length} characters", "shorten it"),
    "string_pattern_mismatch": ("is not in the expected form", "it must match the pattern {pattern}"),
    "string_unicode": ("must be valid text", "write it as UTF-8 text"),
    "bytes_type": ("must be text", "write a single value"),
    "bytes_too_short": ("is too short: it needs at least {min_length} bytes", "write a longer value"),
    "bytes_too_long": ("is too long: at most {max_length} bytes", "shorten it"),
    # choices
    "literal_error": ("is not one of the allowed values", "write one of: {expected}"),
    "enum": ("is not one of the allowed values", "write one of: {expected}"),
    # collections
    "list_type": ("must be a list", "write it as a YAML list: `- item` lines, or [a, b]"),
    "tuple_type": ("must be a list", "write it as a YAML list: `- item` lines, or [a, b]"),
    "set_type": ("must be a list", "write it as a YAML list: `- item` lines, or [a, b]"),
    "frozen_set_type": ("must be a list", "write it as a YAML list: `- item` lines, or [a, b]"),
    "iterable_type": ("must be a list", "write it as a YAML list: `- item` lines, or [a, b]"),
    "dict_type": ("must be a map of options", "write `key: value` lines indented under it"),
    "mapping_type": ("must be a map of options", "write `key: value` lines indented under it"),
    "model_type": ("must be a map of options", "write `key: value` lines indented under it"),
    "model_attributes_type": ("must be a map of options", "write `key: value` lines indented under it"),
    "dataclass_type": ("must be a map of options", "write `key: value` lines indented under it"),
    "too_short": ("has too few items: at least {min_length} needed", "add items to the list"),
    "too_long": ("has too many items: at most {max_length} allowed", "remove items from the list"),
    # keys
    "missing": ("is required", "add it"),
    "extra_forbidden": ("is not a known option", "check the spelling against the plugin's documentation"),
    # unions: the value matched none of the accepted forms
    "union_tag_invalid": ("has a kind that is not known", "write one of: {expected_tags}"),
    "union_tag_not_found": ("needs its kind", "add `{discriminator}:` to it"),
    # addresses, times, paths
    "url_parsing": ("is not a valid URL", "write a full URL such as https://host:443/path"),
    "url_scheme": ("has a URL scheme that is not allowed", "start it with one of: {expected_schemes}"),
    "url_type": ("is not a valid URL", "write a full URL such as https://host:443/path"),
    "url_too_long": ("is too long for a URL", "shorten it to at most {max_length} characters"),
    "url_syntax_violation": ("is not a valid URL", "write a full URL such as https://host:443/path"),
    "ip_v4_address": ("is not an IPv4 address", "write four numbers such as 127.0.0.1"),
    "ip_v6_address": ("is not an IPv6 address", "write an address such as ::1"),
    "ip_any_address": ("is not an IP address", "write an address such as 127.0.0.1 or ::1"),
    "ip_any_interface": ("is not an IP interface", "write an address with a prefix such as 10.0.0.1/24"),
    "ip_any_network": ("is not an IP network", "write a network such as 10.0.0.0/8"),
    "path_type": ("must be a file path", "write a path such as /var/log/app.log"),
    "path_not_file": ("is not a file", "name an existing file"),
    "path_not_directory": ("is not a directory", "name an existing directory"),
    "path_not_exists": ("does not exist", "name a path that exists"),
    "timedelta_parsing": ("is not a duration", "write seconds, e.g. 30, or an ISO 8601 duration, e.g. PT30S"),
    "timedelta_type": ("is not a duration", "write seconds, e.g. 30, or an ISO 8601 duration, e.g. PT30S"),
    "datetime_parsing": ("is not a date and time", "write it as 2024-01-31T12:00:00Z"),
    "datetime_type": ("is not a date and time", "write it as 2024-01-31T12:00:00Z"),
    "date_parsing": ("is not a date", "write it as 2024-01-31"),
    "date_type": ("is not a date", "write it as 2024-01-31"),
    "time_parsing": ("is not a time of day", "write it as 12:00:00"),
    "time_type": ("is not a time of day", "write it as 12:00:00"),
    "uuid_parsing": ("is not a UUID", "write it as 8-4-4-4-12 hex digits"),
    "uuid_type": ("is not a UUID", "write it as 8-4-4-4-12 hex digits"),
    "json_invalid": ("is not valid JSON", "check the quoting and brackets"),
    "json_type": ("is not valid JSON", "write it as JSON text"),
    "none_required": ("must be empty", "remove the value or write null"),
    "callable_type": ("is not usable here", "remove it"),
    "is_instance_of": ("has the wrong kind of value", "see the plugin's documentation for what it takes"),
    "is_subclass_of": ("has the wrong kind of value", "see the plugin's documentation for what it takes"),
}

# A validator of ours raised ValueError/AssertionError: its text is already ours.
OWN_TYPES = frozenset({"value_error", "assertion_error"})
HINT_SEPARATOR = " | hint: "
"""`raise ValueError(f"give one of a and b{HINT_SEPARATOR}remove one")`: a validator's message and its hint."""
GENERIC = ("is not valid here", "see the plugin's documentation for what it takes (`collector schema` lists it)")


def _fill(template: str, ctx: Mapping[str, Any]) -> str | None:
    """The template with the ctx's details; None when the ctx lacks one (the caller says less)."""
    try:
        return template.format(**{k: _show(v) for k, v in ctx.items()})
    except (KeyError, IndexError, ValueError):
        return None


def _show(value: Any) -> str:
    if isinstance(value, str):
        # pydantic quotes the choices of a literal as "'a', 'b' or 'c'": keep the words, lose the quotes
        return value.replace("'", "`")
    return str(value)


def describe(err: Mapping[str, Any]) -> tuple[str, str | None]:
    """Our message and hint for one pydantic error (an item of `ValidationError.errors()`)."""
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    if kind in OWN_TYPES:
        message = str(err.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        # A validator that checks a whole block has no option description to lend a hint: it gives its own,
        # after HINT_SEPARATOR in its message.
        message, _, own_hint = message.partition(HINT_SEPARATOR)
        return message, own_hint or None
    message, hint = TABLE.get(kind, GENERIC)
    return _fill(message, ctx) or message.partition(":")[0], _fill(hint, ctx) or GENERIC[1]


def is_known(kind: str) -> bool:
    """Whether `kind` has its own sentence (not the generic one)."""
    return kind in TABLE or kind in OWN_TYPES
