"""The CloudWatch agent's `timestamp_format` as a `parse_regex` pattern plus a `parse_timestamp` format.

The agent finds the time anywhere in a line by turning its format into a
regular expression, then parses the match. We do the same in two processors:
`parse_regex` captures the text into a field and `parse_timestamp` turns it into
the record's timestamp. Directives are the agent's documented ones; `%-d`
style (no leading zero) is plain `%d` for strptime, which accepts one digit.
"""

from __future__ import annotations

import re

TIME_FIELD = "_agent_time"
_DIGITS = {"Y": r"\d{4}", "y": r"\d{2}", "f": r"\d{1,6}", "j": r"\d{1,3}"}
_ONE_OR_TWO = set("mdHIMS")
_WORDS = set("bBaA")
_DIRECTIVE_RE = re.compile(r"%(-?)([A-Za-z%])")
# A year-less syslog stamp: our `rfc3164` format infers the year, strptime would say 1900.
_SYSLOG = {"%b %d %H:%M:%S", "%b %-d %H:%M:%S"}


def translate(fmt: str) -> tuple[str, str] | str:
    """(regex with a `_agent_time` group, parse_timestamp format), or the reason it cannot be translated."""
    if fmt in _SYSLOG:
        return rf"(?P<{TIME_FIELD}>[A-Za-z]{{3}} +\d{{1,2}} \d{{2}}:\d{{2}}:\d{{2}})", "rfc3164"
    regex: list[str] = []
    strptime: list[str] = []
    last = 0
    for match in _DIRECTIVE_RE.finditer(fmt):
        regex.append(_literal(fmt[last : match.start()]))
        strptime.append(fmt[last : match.start()])
        code = match.group(2)
        if code in _DIGITS:
            regex.append(_DIGITS[code])
        elif code in _ONE_OR_TWO:
            regex.append(r"\d{1,2}")
        elif code in _WORDS:
            regex.append(r"[A-Za-z]+")
        elif code == "p":
            regex.append(r"[AaPp][Mm]")
        elif code == "z":
            regex.append(r"(?:Z|[+-]\d{2}:?\d{2})")
        elif code == "%":
            regex.append("%")
        else:
            return f"directive %{match.group(1)}{code} is not one we translate"
        strptime.append(f"%{code}")
        last = match.end()
    regex.append(_literal(fmt[last:]))
    strptime.append(fmt[last:])
    pattern = "".join(strptime)
    if not re.search(r"%[Yy]", pattern):
        return "a format without a year would parse as 1900"
    return f"(?P<{TIME_FIELD}>{''.join(regex)})", pattern


def _literal(text: str) -> str:
    # strptime lets any run of whitespace match a space in the format; so does the regex.
    return r"\s+".join(re.escape(part) for part in text.split(" "))
