"""The StatsD line protocol (with DogStatsD tags), parsed straight into an `Aggregator`.

    <name>:<value>|<type>[|@<sample rate>][|#<tag>:<value>,<tag>...]

Types: `c` counter (value / sample rate is added), `g` gauge (`+n`/`-n` are
deltas from the last value, anything else sets it; a negative absolute value
is sent as `x:0|g` then `x:-5|g`), `ms` timer (a distribution in
Milliseconds), `h` histogram and `d` distribution (distributions; a sample
rate weights each value by 1/rate), `s` set (distinct members). DogStatsD
extensions: several values in one line (`name:1:2:3|d`), a tag without a value
(`|#canary`, taken as `canary:true`); other `|` sections (`|c:<container>`,
`|T<timestamp>`) are ignored. Events (`_e{`) and service checks (`_sc|`) are
not metrics: they are counted as `ignored` and skipped.

Why it is fast (the target is >= 300,000 lines/s on one core): everything but
the value in a line, `(name, "type|@rate|#tags")`, repeats from one line to the
next, so it is parsed once and cached with the series it resolves to; a line
then costs two `partition`s, a dict lookup, a `float()` and an addition. The
cache is bounded (cleared when it outgrows `4 * max_series` entries).

A line that does not parse (no `:` or `|`, an unknown type, a value that is
not a finite number, or a counter value that is not once divided by its sample
rate, an empty name, a bad sample rate) is skipped and counted as malformed, as
is a counter or gauge change that would take its series past a finite number
(the sum so far is kept); the first of each interval is logged with the line.
"""

from __future__ import annotations

import math
from typing import Final

from collector_plugins.common.metrics.aggregator import Aggregator, SeriesKey

COUNTER: Final = 0
GAUGE: Final = 1
DISTRIBUTION: Final = 2
SET: Final = 3

_TYPES: dict[bytes, tuple[int, str, str | None]] = {
    b"c": (COUNTER, "counter", None),
    b"g": (GAUGE, "gauge", None),
    b"ms": (DISTRIBUTION, "distribution", "Milliseconds"),
    b"h": (DISTRIBUTION, "distribution", None),
    b"d": (DISTRIBUTION, "distribution", None),
    b"s": (SET, "set", None),
}
_SIGNS = frozenset(b"+-")
_UNSEEN: Entry = (-1, 0.0, ("", "", ()), None)  # a cache miss (compared by identity)
_isfinite = math.isfinite

Entry = tuple[int, float, SeriesKey, str | None]
"""(kind code, weight = 1 / sample rate, series key, unit)."""


class MalformedLine(ValueError):
    pass


def parse_meta(name: bytes, meta: bytes) -> Entry:
    """The cached part of a line: its type, sample weight and series; MalformedLine when it does not parse."""
    if not name:
        raise MalformedLine("empty metric name")
    sections = meta.split(b"|")
    kind = _TYPES.get(sections[0])
    if kind is None:
        raise MalformedLine(f"unknown metric type {sections[0][:16]!r}")
    code, type_name, unit = kind
    weight = 1.0
    tags: dict[str, str] = {}
    for section in sections[1:]:
        if section.startswith(b"@"):
            try:
                rate = float(section[1:])
            except ValueError:
                raise MalformedLine(f"bad sample rate {section[:16]!r}") from None
            if not 0 < rate <= 1:
                raise MalformedLine(f"sample rate {rate} outside (0, 1]")
            if code in (COUNTER, DISTRIBUTION):
                weight = 1.0 / rate
        elif section.startswith(b"#"):
            for tag in section[1:].decode("utf-8", "replace").split(","):
                if not tag:
                    continue
                tag_key, sep, tag_value = tag.partition(":")
                if tag_key:
                    tags[tag_key] = tag_value if sep and tag_value else "true"
        # Anything else (container id, timestamp, future extensions) does not change the series.
    series: SeriesKey = (type_name, name.decode("utf-8", "replace"), tuple(sorted(tags.items())))
    return (code, weight, series, unit)


class StatsdParser:
    """Parses lines into an aggregator. Synchronous; the owner calls `feed` with whole lines only."""

    def __init__(self, aggregator: Aggregator, max_cache: int) -> None:
        self.agg = aggregator
        self.max_cache = max_cache
        # (name, everything after the value) -> its Entry, or None for a line that does not parse.
        self._cache: dict[tuple[bytes, bytes], Entry | None] = {}
        self._reasons: dict[tuple[bytes, bytes], str] = {}
        self.lines = 0
        """Lines seen (malformed and ignored included; blank lines are not lines)."""
        self.malformed = 0
        self.ignored = 0
        """Events and service checks: valid DogStatsD, not metrics."""
        self.first_malformed: tuple[bytes, str] | None = None
        """The first malformed line since `take_first_malformed`, and why (for the log)."""

    def feed(self, block: bytes) -> int:
        """Parse newline-separated lines (a datagram, or complete lines of a stream); returns malformed ones."""
        return self.feed_lines(block.split(b"\n"))

    def feed_lines(self, lines: list[bytes]) -> int:
        agg = self.agg
        current = agg.current
        get = self._cache.get
        ignored_before = self.ignored
        malformed = 0
        count = 0
        for line in lines:
            if not line:
                continue
            count += 1
            name, _, rest = line.partition(b":")
            value, sep, meta = rest.partition(b"|")
            entry = get((name, meta), _UNSEEN)
            if entry is _UNSEEN:
                entry = self._resolve(line, name, meta, sep)
            if entry is None:
                malformed += 1
                if self.first_malformed is None and (name, meta) in self._reasons:
                    self._note_malformed(line, self._reasons[(name, meta)])
                continue
            code, weight, key, unit = entry
            # The value first: a line with a bad value must not create an (empty) series.
            several = None
            try:
                if code == SET:
                    if not value:
                        raise ValueError
                    number = 0.0
                elif code == DISTRIBUTION and b":" in value:
                    several = [float(part) for part in value.split(b":")]
                    if not all(map(_isfinite, several)):
                        raise ValueError
                    number = 0.0
                else:
                    number = float(value)
                    if code == COUNTER:
                        number *= weight  # what the line adds: 1e308 at @0.5 is no longer a number
                    if not _isfinite(number):
                        raise ValueError
            except ValueError:
                malformed += 1
                self._note_malformed(line, "the value is not a finite number")
                continue
            series = current.get(key)
            if series is None:
                series = agg.new_series(key, unit)
                if series is None:
                    continue
            if code == COUNTER or (code == GAUGE and value[0] in _SIGNS):
                total = series.value + number
                if not _isfinite(total):  # the line would overflow the series: refused, the sum kept
                    malformed += 1
                    self._note_malformed(line, "the value would take the series past a finite number")
                    continue
                series.value = total
            elif code == DISTRIBUTION:
                if several is None:
                    series.dist.add(number, weight)  # type: ignore[union-attr]
                else:
                    series.dist.add_values(several, weight)  # type: ignore[union-attr]
            elif code == GAUGE:
                series.value = number
            else:
                series.members.add(value.decode("utf-8", "replace"))  # type: ignore[union-attr]
        ignored = self.ignored - ignored_before
        malformed -= ignored  # events and service checks went through the malformed branch
        self.lines += count
        self.malformed += malformed
        return malformed

    def _resolve(self, line: bytes, name: bytes, meta: bytes, sep: bytes) -> Entry | None:
        """Parse and cache the non-value part of a line seen for the first time."""
        if line.startswith((b"_e{", b"_sc|")):
            # Not cached: an event's first part varies with its title and would only fill the cache.
            self.ignored += 1
            return None
        if len(self._cache) >= self.max_cache:
            self._cache.clear()
            self._reasons.clear()
        key = (name, meta)
        try:
            if not sep:
                raise MalformedLine("no `:value|type`")
            entry: Entry | None = parse_meta(name, meta)
        except MalformedLine as exc:
            entry = None
            self._reasons[key] = str(exc)
        self._cache[key] = entry
        return entry

    def _note_malformed(self, line: bytes, why: str) -> None:
        if self.first_malformed is None:
            self.first_malformed = (line[:200], why)

    def take_first_malformed(self) -> tuple[bytes, str] | None:
        first, self.first_malformed = self.first_malformed, None
        return first
