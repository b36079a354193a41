"""Parsing syslog messages: RFC 5424 and RFC 3164 (BSD), detected per message.

Design note. The parser runs once per message on the syslog input's hot path
(200,000 messages/s on one core), so it uses `str.find`/`split` and a few
precomputed tables; the canonical forms take a fast path and only the
variants devices really send fall through to one regular expression.
Timestamp conversions are cached (consecutive messages usually share a second).

A record is a dict with `timestamp` (float epoch seconds: the message's own
time, or the receive time when it has none), `message`, `facility` and
`severity` (names: `local4`, `notice`), and when present `host`, `app`,
`procid`, `msgid` and `structured_data` (`{SD-ID: {name: value}}`). RFC 5424
NILVALUEs (`-`) are left out.

- RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`; a leading UTF-8
  BOM of MSG is dropped. Another VERSION (`<PRI>2 ...`) is read with the same
  layout and flagged.
- RFC 3164: `<PRI>TIMESTAMP HOST TAG MSG`, read the way rsyslog's pmrfc3164
  reads it, since that is what the field's senders are written against:
  TIMESTAMP is `Mmm dd hh:mm:ss` with the variants devices send (month in any
  case, a day not padded, a year before the month or before the time, `.fff`
  fractions, a `:` after the time, a space before it) or an RFC 3339 time.
  HOST is the next word when it looks like a host name (letters, digits,
  `.`, `_`, `-`, ending in a letter or digit, followed by a space); TAG runs
  to the first `:` or space (`app[pid]:` gives `app` and `procid`). The year,
  when absent, is the current one, or the previous one for a date more than a
  day ahead (a December message read in January); the time is local time.
  Without a timestamp the rest is all MSG (RFC 3164 section 4.3.2). A text
  without PRI that starts with a timestamp is taken as `user.notice`, as a
  relay must (section 4.3.3).

Nothing is ever dropped: a message that is not syslog (no valid `<PRI>`) or
whose header is cut short becomes a record with the text as `message` and
`parse_error` set. A parsed message with one bad part (an impossible date
such as `Feb 30` or `24:00:00`, an invalid RFC 5424 timestamp, malformed
structured data, an unknown VERSION) keeps every field it has, its timestamp
is the receive time when the date was the bad part, and `parse_error` says
what was wrong. `errors` counts records with `parse_error`.
"""

from __future__ import annotations

import re
import time
from calendar import monthrange
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
_NO_PRI = ("user", "notice")  # what RFC 3164 section 4.3.3 has a relay assume
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i + 1 for i, m in enumerate(MONTHS)}
_MONTHS_ANY_CASE = {m.lower(): i + 1 for i, m in enumerate(MONTHS)}
# The BSD timestamp variants rsyslog accepts: [YYYY ]Mmm d[d] [YYYY ]hh:mm:ss[.frac][:] then a space or the end.
# The fields take any number of digits so that an out-of-range one is seen (and flagged), not mistaken for text.
_BSD_VARIANT = re.compile(
    r" ?(?:(\d{4}) )?([A-Za-z]{3}) {1,2}(\d{1,2}) (?:(\d{4}) )?(\d{1,2}):(\d{1,2}):(\d{1,2})(\.\d{1,9})?:?(?: |$)"
)
_HOST_WORD = re.compile(r"[A-Za-z0-9._-]+")  # the characters rsyslog allows in a host name
_VERSION = re.compile(r"([1-9][0-9]?) (?=- |\d{4}-)")  # another RFC 5424 VERSION: digits, then a NIL or a date
_TAG_MAX = 510  # rsyslog's longest TAG; the rest of a longer word stays in MSG
_SD_ELEMENT = re.compile(r'\[([^\s\]="]+)((?:\s+[^\s\]="]+="(?:[^"\\]|\\.)*")*)\s*\]', re.S)
_SD_PARAM = re.compile(r'([^\s\]="]+)="((?:[^"\\]|\\.)*)"', re.S)
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')
_CACHE_LIMIT = 4096
_BOM = "\ufeff"
_IMPOSSIBLE = -1.0  # cached value of a date that does not exist (epoch times of syslog dates are never negative)


class SyslogParser:
    """Turns syslog message texts into records. One instance per input (it holds caches and the error count)."""

    def __init__(self) -> None:
        self.errors = 0
        """Messages that could not be parsed fully (kept as records with `parse_error`)."""
        self._iso_cache: dict[str, float] = {}
        self._bsd_cache: dict[str, float] = {}
        self._host_words: dict[str, bool] = {}
        self._bsd_year_checked = 0.0

    def parse(self, text: str, received: float) -> dict[str, Any]:
        kinds = None
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
            elif _BSD_VARIANT.match(text) is not None:  # no PRI, but a BSD timestamp: a line a relay must take
                return self._rfc3164(text, _NO_PRI, 0, received)
            return self._unparsed(text, received, "no valid <PRI> at the start")
        except (ValueError, IndexError, OverflowError) as exc:  # a malformed field the fast path did not expect
            record = self._unparsed(text, received, f"malformed message: {exc}")
            if kinds is not None:  # a valid PRI is never lost
                record["facility"], record["severity"] = kinds
            return record

    # -- RFC 5424 -------------------------------------------------------------------------------------

    def _rfc5424(self, text: str, kinds: tuple[str, str], start: int, received: float) -> dict[str, Any]:
        parts = text[start:].split(" ", 5)
        if len(parts) < 5:
            cut = self._unparsed(text, received, "RFC 5424 header is incomplete")
            cut["facility"], cut["severity"] = kinds  # a valid PRI is never lost
            return cut
        stamp, host, app, procid, msgid = parts[0], parts[1], parts[2], parts[3], parts[4]
        rest = parts[5] if len(parts) == 6 else ""
        value = received if stamp == "-" else self._iso_time(stamp)
        record: dict[str, Any] = {
            "timestamp": received if value is None else value,
            "message": "",
            "facility": kinds[0],
            "severity": kinds[1],
        }
        if value is None:
            self._flag(record, f"invalid timestamp {stamp[:40]!r}")
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
                # Keep the header and find where the elements end, so MSG is still MSG (rsyslog does the same).
                self._flag(record, "malformed structured data")
                end = _sd_extent(rest)
                record["structured_data_raw"] = rest[:end]
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
        """Epoch seconds of an RFC 3339 time, or None if it is not one (or names a day that does not exist)."""
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
        pos = -1
        if (
            len(stamp) == 15
            and stamp[3] == " "
            and stamp[6] == " "
            and stamp[:3] in _MONTHS
            and (len(text) == start + 15 or text[start + 15] == " ")
        ):  # the canonical form: `Mmm dd hh:mm:ss`
            value = self._bsd_cache.get(stamp) if received - self._bsd_year_checked <= 3600 else None
            try:
                if value is None:
                    value = self._bsd_time(stamp, _MONTHS[stamp[:3]], stamp[4:6], None, stamp[7:15], received)
                pos = start + 16
            except ValueError:  # not digits where they belong: not this form after all
                value = None
            if value == _IMPOSSIBLE:
                self._flag(record, f"impossible date {stamp!r}")
            elif value is not None:
                record["timestamp"] = value
        if pos < 0:
            version = _VERSION.match(text, start)
            if version is not None:  # `<PRI>2 ...`: an RFC 5424 layout with a VERSION this parser does not know
                other = self._rfc5424(text, kinds, version.end(), received)
                self._flag(other, f"unsupported RFC 5424 version {version.group(1)}")
                return other
            pos = self._other_time(text, start, received, record)
            if pos < 0:
                record["message"] = text[start:]  # no timestamp: RFC 3164 says the rest is the message
                return record
        # HOST as rsyslog finds it: host name characters, the last a letter or digit, then a space (or the end).
        space = text.find(" ", pos)
        if space < 0:
            if _HOST_WORD.fullmatch(text, pos):
                record["host"] = text[pos:]
                return record
        elif space > pos and text[space - 1].isalnum():
            word = text[pos:space]
            is_host = self._host_words.get(word)  # senders are few: remember the verdict for each word
            if is_host is None:
                if len(self._host_words) >= _CACHE_LIMIT:
                    self._host_words.clear()
                is_host = self._host_words[word] = _HOST_WORD.fullmatch(word) is not None
            if is_host:
                record["host"] = word
                pos = space + 1
                space = text.find(" ", pos, pos + _TAG_MAX + 1)
        if space < 0 or space > pos + _TAG_MAX:
            space = min(len(text), pos + _TAG_MAX)
        end = space
        colon = text.find(":", pos, end)
        if colon >= 0:
            tag = text[pos:colon]
            pos = colon + 1
        else:
            tag = text[pos:end]
            pos = end
        if tag:
            bracket = tag.find("[")
            if bracket >= 0:
                if tag.endswith("]"):
                    record["procid"] = tag[bracket + 1 : -1]
                tag = tag[:bracket]
            if tag:
                record["app"] = tag
        record["message"] = text[pos + 1 :] if text.startswith(" ", pos) else text[pos:]
        return record

    def _other_time(self, text: str, start: int, received: float, record: dict[str, Any]) -> int:
        """A timestamp in a form other than the canonical BSD one: sets it in `record`, returns where the text
        after it starts, or -1 when there is none."""
        first = text[start : start + 1]
        if first.isdigit():
            space = text.find(" ", start)
            end = space if space >= 0 else len(text)
            iso = self._iso_time(text[start:end])
            if iso is not None:
                record["timestamp"] = iso
                return end + 1
        elif not first.isalpha() and first != " ":
            return -1
        found = _BSD_VARIANT.match(text, start)
        if found is None:
            return -1
        year_before, month_name, day, year_after, hour, minute, second, fraction = found.groups()
        month = _MONTHS_ANY_CASE.get(month_name.lower())
        if month is None or (year_before and year_after):
            return -1
        clock = f"{int(hour):02d}:{int(minute):02d}:{int(second):02d}"
        year = year_before or year_after
        value = self._bsd_time(f"{year} {month} {day} {clock}", month, day, year, clock, received)
        if value == _IMPOSSIBLE:
            self._flag(record, f"impossible date {found.group().strip()!r}")
        else:
            record["timestamp"] = value + float(fraction) if fraction else value
        return found.end()

    def _bsd_time(self, key: str, month: int, day: str, year: str | None, clock: str, received: float) -> float:
        """Epoch seconds of a BSD date (cached under `key`), or _IMPOSSIBLE for a day or time that does not exist
        (Feb 30, 24:00:00): mktime would quietly move it into another day."""
        if received - self._bsd_year_checked > 3600:  # a new year may have begun
            self._bsd_cache.clear()
            self._bsd_year_checked = received
        cached = self._bsd_cache.get(key)
        if cached is not None:
            return cached
        hour, minute, second = int(clock[0:2]), int(clock[3:5]), int(clock[6:8])
        day_number = int(day)
        given_year = int(year) if year else 0
        this_year = given_year or time.localtime(received).tm_year
        value = _local_time(this_year, month, day_number, hour, minute, second)
        if not given_year and value > received + 86400:
            value = _local_time(this_year - 1, month, day_number, hour, minute, second)
        if len(self._bsd_cache) >= _CACHE_LIMIT:
            self._bsd_cache.clear()
        self._bsd_cache[key] = value
        return value

    def _flag(self, record: dict[str, Any], reason: str) -> None:
        if "parse_error" not in record:  # one count per record, the first reason kept
            self.errors += 1
            record["parse_error"] = reason

    def _unparsed(self, text: str, received: float, reason: str) -> dict[str, Any]:
        self.errors += 1
        return {"timestamp": received, "message": text, "parse_error": reason}


def _local_time(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    # Second 60 is a leap second (RFC 3164 devices send it; mktime reads it as the next minute's first second).
    if not (1 <= day <= monthrange(year, month)[1] and hour < 24 and minute < 60 and second <= 60):
        return _IMPOSSIBLE
    return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))


def _structured_data(text: str) -> tuple[dict[str, dict[str, str]] | None, int]:
    """Parse SD-ELEMENTs at the start of `text`: ({id: {name: value}}, index just after them) or (None, 0)."""
    data: dict[str, dict[str, str]] = {}
    pos = 0
    match = _SD_ELEMENT.match
    while True:
        element = match(text, pos)
        if element is None:
            return None, 0  # one bad element makes the field malformed: the caller finds where it ends
        params: dict[str, str] = {}
        for name, value in _SD_PARAM.findall(element.group(2)):
            params[name] = _SD_UNESCAPE.sub(r"\1", value) if "\\" in value else value
        data.setdefault(element.group(1), {}).update(params)
        pos = element.end()
        if not text.startswith("[", pos):
            return data, pos


def _sd_extent(text: str) -> int:
    """Where malformed SD-ELEMENTs at the start of `text` end: after the `]` that closes the last `[`-opened
    element outside quotes (a backslash escapes within quotes), or at the first space after an unclosed one."""
    pos, size = 0, len(text)
    while pos < size and text[pos] == "[":
        pos += 1
        quoted = False
        while pos < size:
            char = text[pos]
            if quoted:
                if char == "\\":
                    pos += 1
                elif char == '"':
                    quoted = False
            elif char == '"':
                quoted = True
            elif char == "]":
                pos += 1
                break
            pos += 1
        else:  # never closed: the element cannot be told from MSG; everything is kept as SD text
            return size
    return pos
