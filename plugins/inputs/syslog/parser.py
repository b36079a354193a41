"""Parsing syslog messages: RFC 5424 and RFC 3164 (BSD), detected per message.

Design note. The parser runs once per message on the syslog input's hot path
(200,000 messages/s on one core), so it uses `str.split`/`find` and a few
precomputed tables rather than one big regular expression, and caches
timestamp conversions (consecutive messages usually share a second).

A record is a dict with `timestamp` (float epoch seconds: the message's own
time, or the receive time when it has none), `message`, `facility` and
`severity` (names: `local4`, `notice`), and when present `host`, `app`,
`procid`, `msgid` and `structured_data` (`{SD-ID: {name: value}}`). RFC 5424
NILVALUEs (`-`) are left out.

- RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`; a leading UTF-8
  BOM of MSG is dropped.
- RFC 3164: `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`. The year is not in the
  message: the current year is assumed, or the previous one for a date more
  than a day ahead (a December message read in January); the time is local
  time. A missing HOST is recognised by a TAG that ends with `:` or holds
  `[PID]` (the form local senders like `logger` use on a unix socket). An
  RFC 3339 timestamp in place of the BSD one is accepted too.

Nothing is ever dropped: a message that is not syslog (no valid `<PRI>`) or
whose header is cut short becomes a record with the text as `message` and
`parse_error` set; `errors` counts them.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

FACILITIES = (
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
)
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
# <PRI> text -> (facility, severity); PRI is at most 3 digits and at most 191, without leading zeros.
_PRI: dict[str, tuple[str, str]] = {
    str(pri): (FACILITIES[pri >> 3], SEVERITIES[pri & 7]) for pri in range(len(FACILITIES) * 8)
}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i + 1 for i, m in enumerate(MONTHS)}
_SD_ELEMENT = re.compile(r'\[([^\s\]="]+)((?:\s+[^\s\]="]+="(?:[^"\\]|\\.)*")*)\s*\]', re.S)
_SD_PARAM = re.compile(r'([^\s\]="]+)="((?:[^"\\]|\\.)*)"', re.S)
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')
_CACHE_LIMIT = 4096
_BOM = "\ufeff"


class SyslogParser:
    """Turns syslog message texts into records. One instance per input (it holds caches and the error count)."""

    def __init__(self) -> None:
        self.errors = 0
        """Messages that could not be parsed fully (kept as records with `parse_error`)."""
        self._iso_cache: dict[str, float] = {}
        self._bsd_cache: dict[str, float] = {}
        self._bsd_year_checked = 0.0

    def parse(self, text: str, received: float) -> dict[str, Any]:
        try:
            if text.startswith("<"):
                close = text.find(">", 1, 5)
                if close > 0:
                    kinds = _PRI.get(text[1:close])
                    if kinds is not None:
                        body = close + 1
                        if text.startswith("1 ", body):
                            return self._rfc5424(text, kinds, body + 2, received)
                        return self._rfc3164(text, kinds, body, received)
            return self._unparsed(text, received, "no valid <PRI> at the start")
        except (ValueError, IndexError, OverflowError) as exc:  # a malformed field the fast path did not expect
            return self._unparsed(text, received, f"malformed message: {exc}")

    # -- RFC 5424 -------------------------------------------------------------------------------------

    def _rfc5424(self, text: str, kinds: tuple[str, str], start: int, received: float) -> dict[str, Any]:
        parts = text[start:].split(" ", 5)
        if len(parts) < 5:
            return self._unparsed(text, received, "RFC 5424 header is incomplete")
        stamp, host, app, procid, msgid = parts[0], parts[1], parts[2], parts[3], parts[4]
        rest = parts[5] if len(parts) == 6 else ""
        record: dict[str, Any] = {
            "timestamp": received if stamp == "-" else self._iso_time(stamp) or received,
            "message": "",
            "facility": kinds[0],
            "severity": kinds[1],
        }
        if host != "-":
            record["host"] = host
        if app != "-":
            record["app"] = app
        if procid != "-":
            record["procid"] = procid
        if msgid != "-":
            record["msgid"] = msgid
        if rest.startswith("-"):
            message = rest[2:]
        elif rest.startswith("["):
            data, end = _structured_data(rest)
            if data is None:
                record["parse_error"] = "malformed structured data"
                self.errors += 1
                message = rest
            else:
                record["structured_data"] = data
                message = rest[end + 1 :] if rest.startswith(" ", end) else rest[end:]
        else:
            message = rest  # no SD field: lenient, the rest is the message
        if message.startswith(_BOM):
            message = message[1:]
        record["message"] = message
        return record

    def _iso_time(self, stamp: str) -> float | None:
        """Epoch seconds of an RFC 3339 time, or None if it is not one (the receive time is used then)."""
        cached = self._iso_cache.get(stamp)
        if cached is not None:
            return cached
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            return None
        value = moment.timestamp()  # a naive time (no offset; not RFC 5424) is taken as local time
        if len(self._iso_cache) >= _CACHE_LIMIT:
            self._iso_cache.clear()
        self._iso_cache[stamp] = value
        return value

    # -- RFC 3164 -------------------------------------------------------------------------------------

    def _rfc3164(self, text: str, kinds: tuple[str, str], start: int, received: float) -> dict[str, Any]:
        record: dict[str, Any] = {"timestamp": received, "message": "", "facility": kinds[0], "severity": kinds[1]}
        stamp = text[start : start + 15]
        if len(stamp) == 15 and stamp[3] == " " and stamp[6] == " " and stamp[:3] in _MONTHS:
            record["timestamp"] = self._bsd_time(stamp, received)
            pos = start + 16 if text.startswith(" ", start + 15) else start + 15
        else:
            space = text.find(" ", start)
            end = space if space >= 0 else len(text)
            iso = self._iso_time(text[start:end]) if text[start : start + 1].isdigit() else None
            if iso is None:
                record["message"] = text[start:]  # no timestamp: RFC 3164 says the rest is the message
                return record
            record["timestamp"] = iso
            pos = end + 1
        first, sep, rest = text[pos:].partition(" ")
        tag = _tag(first)
        if tag is None:
            if sep:
                record["host"] = first
                second, sep2, after = rest.partition(" ")
                tag = _tag(second)
                if tag is None:
                    record["message"] = rest
                    return record
                rest = after if sep2 else ""
            else:
                record["message"] = first
                return record
        app, procid = tag
        if app:
            record["app"] = app
        if procid:
            record["procid"] = procid
        record["message"] = rest
        return record

    def _bsd_time(self, stamp: str, received: float) -> float:
        if received - self._bsd_year_checked > 3600:  # a new year may have begun
            self._bsd_cache.clear()
            self._bsd_year_checked = received
        cached = self._bsd_cache.get(stamp)
        if cached is not None:
            return cached
        month = _MONTHS[stamp[:3]]
        day = int(stamp[4:6])
        hour, minute, second = int(stamp[7:9]), int(stamp[10:12]), int(stamp[13:15])
        year = time.localtime(received).tm_year
        value = time.mktime((year, month, day, hour, minute, second, 0, 0, -1))
        if value > received + 86400:
            value = time.mktime((year - 1, month, day, hour, minute, second, 0, 0, -1))
        if len(self._bsd_cache) >= _CACHE_LIMIT:
            self._bsd_cache.clear()
        self._bsd_cache[stamp] = value
        return value

    def _unparsed(self, text: str, received: float, reason: str) -> dict[str, Any]:
        self.errors += 1
        return {"timestamp": received, "message": text, "parse_error": reason}


def _tag(token: str) -> tuple[str, str] | None:
    """`app[123]:` -> ("app", "123"); `app:` -> ("app", ""); anything else is not a tag."""
    colon = token.endswith(":")
    if colon:
        token = token[:-1]
    if token.endswith("]"):
        bracket = token.find("[")
        if bracket >= 0:
            return token[:bracket], token[bracket + 1 : -1]
    if colon:
        return token, ""
    return None


def _structured_data(text: str) -> tuple[dict[str, dict[str, str]] | None, int]:
    """Parse SD-ELEMENTs at the start of `text`: ({id: {name: value}}, index just after them) or (None, 0)."""
    data: dict[str, dict[str, str]] = {}
    pos = 0
    match = _SD_ELEMENT.match
    while True:
        element = match(text, pos)
        if element is None:
            return (data, pos) if data else (None, 0)
        params: dict[str, str] = {}
        for name, value in _SD_PARAM.findall(element.group(2)):
            params[name] = _SD_UNESCAPE.sub(r"\1", value) if "\\" in value else value
        data.setdefault(element.group(1), {}).update(params)
        pos = element.end()
        if not text.startswith("[", pos):
            return data, pos
