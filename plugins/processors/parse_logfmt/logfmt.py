"""A logfmt decoder: `level=info msg="hello \\"world\\"" took=12ms cached`.

logfmt has no formal spec; this follows the de facto one, `github.com/go-logfmt/logfmt`
(what Go's kit/log, logrus' text formatter and Heroku's router write):

- pairs are separated by whitespace; a key is a run of characters other than
  whitespace, `=` and `"`;
- `key=value`: an unquoted value runs to the next whitespace and may not contain
  `"` (it may contain `=`, which go-logfmt rejects: found in URLs, kept here);
- `key="..."`: a quoted value with Go string escapes (`\\"`, `\\\\`, `\\n`, `\\t`,
  `\\uXXXX`, ...; surrogates and invalid code points become U+FFFD as in Go, an
  unknown escape, or `\\u`, `\\U`, `\\x` without enough hex digits (`C:\\Users`), is
  kept as written);
- `key=` is the empty string, a bare `key` is `True`;
- a repeated key keeps its last value.

Anything else (a stray quote, an unterminated string, `=value` without a key)
makes the whole line invalid: `LogfmtError` with the reason.
"""

from __future__ import annotations

import re

# One pair per match: key, "=", quoted value, bare value; or a run of anything else (junk).
_PAIR = re.compile(
    r"""\s*(?:
        ([^\s="]+)
        (?:(=)(?:"((?:[^"\\]|\\.)*)"|([^\s"]*)))?
        (?=\s|\Z)
      | (\S+)
    )""",
    re.X | re.S,
)
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[0-7]{3}|.)", re.S)
_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "'": "'",
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}


class LogfmtError(ValueError):
    """The text is not logfmt; the message says why."""


def _unescape_one(match: re.Match[str]) -> str:
    escape = match[0]
    kind = escape[1]
    if len(escape) == 2 and kind in "uUx":
        # Too few hex digits (`C:\Users`, `\x` at the end): Go rejects the string, we keep the escape as
        # written, like an unknown one; the pair (and every other pair of the line) stays.
        return escape
    if kind in "uU":
        code = int(escape[2:], 16)
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            return "\ufffd"
        return chr(code)
    if kind == "x":
        return chr(int(escape[2:], 16))
    if kind in "01234567" and len(escape) == 4:
        return chr(int(escape[1:], 8))
    return _SIMPLE_ESCAPES.get(kind, escape)


def _unescape(text: str) -> str:
    return _ESCAPE.sub(_unescape_one, text) if "\\" in text else text


def parse_logfmt(text: str, bare_keys: bool = True) -> dict[str, str | bool]:
    """The pairs of one logfmt line; raises `LogfmtError` if it is not logfmt.

    With `bare_keys=False`, a key without `=` is an error too (plain prose would
    otherwise parse as one `True` key per word).
    """
    fields: dict[str, str | bool] = {}
    if '"' not in text:
        # No quoted value: whitespace separates the pairs, as str.split() does (same whitespace as re's \s).
        for token in text.split():
            key, equals, value = token.partition("=")
            if not key:
                raise LogfmtError("a value without a key")
            if equals:
                fields[key] = value
            elif bare_keys:
                fields[key] = True
            else:
                raise LogfmtError(f"a key without a value: {key[:64]}")
        return fields
    for key, equals, quoted, bare, junk in _PAIR.findall(text):
        if junk:
            if junk[0] == "=":
                raise LogfmtError("a value without a key")
            if '"' in junk:
                raise LogfmtError("a misplaced or unterminated quote")
            raise LogfmtError("unexpected characters")
        if equals:
            # An empty quoted value and an empty bare one are both "": which group matched does not matter.
            fields[key] = _unescape(quoted) if quoted else bare
        elif bare_keys:
            fields[key] = True
        else:
            raise LogfmtError(f"a key without a value: {key[:64]}")
    return fields
