"""Record values made safe to stand in an S3 object key or a file path: one value, one path segment at most.

A value (a record field, a host fact) put into a key or path template could
otherwise add segments (`a/b`, `../../etc`), spoof Hive partitions
(`x/year=1999`), or carry characters that break tools reading the keys (NUL,
TAB, newline, `\\`, `{`...). `escape_value` keeps the characters S3's "Object
key naming guidelines" call safe — `0-9 a-z A-Z ! - _ . * ' ( )` — and
percent-encodes every other character as the `%XX` of its UTF-8 bytes
(uppercase hex): `a/b` becomes `a%2Fb`, `é` becomes `%C3%A9`, `%` itself
becomes `%25`. A value made of dots only (`.`, `..`) is encoded whole
(`%2E%2E`), so no rendered segment can be a `.` or `..` path step.

- No output contains `/` nor any character outside the safe set and `%`.
  (`%` is on S3's list of characters to avoid; it is the escape character all
  the same, because it is the one Hive, Athena's `MSCK REPAIR TABLE` and
  every URL library decode: `host=a%2Fb` reads back as the partition value
  `a/b`.)
- Injective: percent-decoding the output (as UTF-8) gives the value back, so
  two different values never render the same segment.
- Fast: a value that is already safe (the usual case: host names, namespaces,
  app names) is returned as is after one regex search, and short values (the
  ones keys are made of) are remembered in a bounded cache, since a batch
  repeats the same few values over and over.
"""

from __future__ import annotations

import functools
import re

SAFE_CHARACTERS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!-_.*'()")
"""S3's safe characters for object keys (Amazon S3 User Guide, "Object key naming guidelines")."""

_UNSAFE = re.compile(r"[^0-9a-zA-Z!\-_.*'()]+")
# Values up to this long are cached (so the cache holds at most CACHE_SIZE * CACHED_LENGTH characters).
CACHED_LENGTH = 256
CACHE_SIZE = 4096


def _encode(match: re.Match[str]) -> str:
    # surrogatepass: a lone surrogate (possible in a str from some decoders) is encoded, not a crash.
    return "".join(f"%{byte:02X}" for byte in match.group().encode("utf-8", "surrogatepass"))


def escape_value(value: str) -> str:
    """`value` with every character outside `SAFE_CHARACTERS` percent-encoded; dots-only values encoded whole."""
    if len(value) <= CACHED_LENGTH:
        return _escape_cached(value)
    return _escape(value)


def _escape(value: str) -> str:
    if _UNSAFE.search(value) is not None:
        return _UNSAFE.sub(_encode, value)
    if value and not value.strip("."):
        return "%2E" * len(value)
    return value


_escape_cached = functools.lru_cache(maxsize=CACHE_SIZE)(_escape)
