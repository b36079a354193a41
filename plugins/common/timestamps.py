"""Timestamps in their common text forms to float epoch seconds.

`rfc3339_epoch` is the hot one: container runtimes stamp every line
(`2016-10-06T00:17:09.669794202Z`, Go's RFC3339Nano: 0 to 9 fraction digits,
trailing zeros trimmed, `Z` or a numeric offset since containerd and CRI-O
write the node's local time). `datetime.fromisoformat` (C, Python >= 3.11)
reads all of that, nanoseconds truncated to microseconds, in about 0.2 µs.

`timestamp_parser(spec, tz)` builds one parser per configured format for the
`parse_timestamp` processor: a named format or a `strptime` pattern. Every
parser takes the field's value (str, bytes or a number) and returns epoch
seconds or None; none of them raises on bad input.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

_fromisoformat = datetime.fromisoformat

Parser = Callable[[Any], "float | None"]

NAMED_FORMATS = ("rfc3339", "iso8601", "unix", "unix_ms", "unix_us", "unix_ns", "rfc3164")
"""Format names `timestamp_parser` knows besides `strptime` patterns."""


def rfc3339_epoch(text: str) -> float | None:
    """`2016-10-06T00:17:09.669794202Z` (or with `+02:00`) as epoch seconds; None when invalid or without offset.

    Accepts RFC 3339 `date-time` (`T`, `t` or a space between date and time, any number
    of fraction digits) and the other ISO 8601 forms `fromisoformat` reads, as long as
    they carry a time zone: a time without one is ambiguous.
    """
    try:
        moment = _fromisoformat(text)
    except ValueError:
        if not text.isascii() or not any(c in text for c in "tz"):
            return None
        try:  # RFC 3339 allows lower-case `t` and `z`; fromisoformat does not.
            moment = _fromisoformat(text.upper())
        except ValueError:
            return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace").strip()
    return None


def _rfc3339(value: Any) -> float | None:
    text = _as_text(value)
    return None if text is None else rfc3339_epoch(text)


def _iso8601(tz: tzinfo) -> Parser:
    def parse(value: Any) -> float | None:
        text = _as_text(value)
        if text is None:
            return None
        try:
            moment = _fromisoformat(text)
        except ValueError:
            return rfc3339_epoch(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        return moment.timestamp()

    return parse


_UNIX_RE = re.compile(r"-?\d{1,20}(?:\.\d{1,20})?\Z", re.ASCII)  # 20 digits: past any ns epoch
# Epoch seconds a date cannot pass without being nonsense for a log record (year 1 .. 9999).
_MIN_EPOCH, _MAX_EPOCH = -62135596800.0, 253402300799.0


def _unix(scale: float) -> Parser:
    def parse(value: Any) -> float | None:
        if isinstance(value, bool):
            return None
        if isinstance(value, int | float):
            number = float(value)
        else:
            text = _as_text(value)
            if text is None or _UNIX_RE.match(text) is None:
                return None
            number = float(text) if "." in text else int(text)
        seconds = number / scale
        if not _MIN_EPOCH <= seconds <= _MAX_EPOCH:  # also rejects inf and nan
            return None
        return seconds

    return parse


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_RFC3164_RE = re.compile(r"([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})\Z", re.ASCII)
# A BSD syslog stamp has no year: the current one, unless that puts it this far in the future.
_FUTURE_SLACK = timedelta(days=1)


def _rfc3164(tz: tzinfo, now: Callable[[], float]) -> Parser:
    def parse(value: Any) -> float | None:
        text = _as_text(value)
        if text is None:
            return None
        match = _RFC3164_RE.match(text)
        if match is None:
            return None
        month = _MONTHS.get(match[1])
        if month is None:
            return None
        current = datetime.fromtimestamp(now(), tz)
        day, hour, minute, second = int(match[2]), int(match[3]), int(match[4]), int(match[5])
        for year in (current.year, current.year - 1):
            try:
                moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
            except ValueError:  # Feb 29 outside a leap year, day 31 in a short month, second 60
                continue
            if moment - current <= _FUTURE_SLACK:
                return moment.timestamp()
        return None

    return parse


def _strptime(pattern: str, tz: tzinfo) -> Parser:
    def parse(value: Any) -> float | None:
        text = _as_text(value)
        if text is None:
            if isinstance(value, int | float) and not isinstance(value, bool):
                text = str(value)
            else:
                return None
        try:
            moment = datetime.strptime(text, pattern)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=tz)
        try:
            return moment.timestamp()
        except (OverflowError, ValueError):
            return None

    return parse


def timestamp_parser(spec: str, tz: tzinfo, now: Callable[[], float] = time.time) -> Parser:
    """A parser for one configured format: a name from `NAMED_FORMATS` or a `strptime` pattern (with `%`).

    `tz` applies to values that carry no offset of their own (`iso8601`, `rfc3164`,
    patterns without `%z`); `now` gives `rfc3164` its year. Raises ValueError for
    a spec that is neither.
    """
    if spec == "rfc3339":
        return _rfc3339
    if spec == "iso8601":
        return _iso8601(tz)
    if spec == "unix":
        return _unix(1.0)
    if spec == "unix_ms":
        return _unix(1e3)
    if spec == "unix_us":
        return _unix(1e6)
    if spec == "unix_ns":
        return _unix(1e9)
    if spec == "rfc3164":
        return _rfc3164(tz, now)
    if "%" not in spec:
        raise ValueError(
            f"unknown timestamp format {spec!r}: use one of {', '.join(NAMED_FORMATS)} or a strptime pattern"
        )
    try:
        # strptime reports a bad directive only when it is used: try the pattern once on a time it wrote.
        datetime.strptime(datetime(2001, 2, 3, 4, 5, 6, 7, tzinfo=UTC).strftime(spec), spec)
    except ValueError as exc:
        raise ValueError(f"invalid strptime pattern {spec!r}: {exc}") from None
    return _strptime(spec, tz)
