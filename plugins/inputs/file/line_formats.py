"""Line formats: how the raw lines of one source become records.

The `file` input reads a file in large chunks and splits them into complete
lines; a line format turns those lines into records. `raw` (one line, one
record) is handled by the file input's own fast path; container runtimes wrap
each line in an envelope (`docker` json-file, `cri`) and split long lines into
parts that a format joins back.

A format keeps per-source state (`FormatState`): a stateful format may hold
lines back (a partial line waiting for its final part). Because an input may
only commit a source position once everything before it has been emitted and
acknowledged, the state says where the oldest held byte starts
(`held_from`); the reader never commits past it. Held lines are emitted by
`flush` when they have waited too long, or when the source is finished.

Bad lines are never dropped: a line a format cannot parse becomes a record
whose `message` is the line as text and whose `parse_error` says why; the
reason is counted in `state.errors`.

A format is built once per input (`FORMATS[name](**options)`, every option a
keyword with a default; the container formats take `max_message_bytes`) and
serves all of that input's sources: everything per source lives in the
`FormatState` that `new_state()` makes for each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple


class ParsedLines(NamedTuple):
    records: list[dict[str, Any]]
    """Complete records, in source order."""
    starts: list[int]
    """For each record, the source offset of the first byte of its first raw line."""


@dataclass
class FormatState:
    """What a format remembers about one source between chunks."""

    held_from: int | None = None
    """Source offset of the oldest raw byte held back (not yet in an emitted record); None when none is held."""
    held_since: float = 0.0
    """`time.monotonic()` when the oldest held line arrived; meaningful only while `held_from` is set."""
    errors: Counter[str] = field(default_factory=Counter)
    """Lines that could not be parsed (kept as unparsed records, never dropped), or messages that could not be
    kept whole (`message too long`: emitted in pieces), by reason. Only ever incremented: read the differences."""
    extra: dict[str, Any] = field(default_factory=dict)
    """The format's own bookkeeping (partial lines per stream, ...)."""


class LineFormat(ABC):
    name: ClassVar[str]

    def new_state(self) -> FormatState:
        return FormatState()

    @abstractmethod
    def parse(self, state: FormatState, lines: Sequence[bytes], offset: int) -> ParsedLines:
        """Records for `lines`: consecutive complete lines of one source, each without its b"\\n".

        The first line starts at source offset `offset`; each line occupies `len(line) + 1` bytes.
        Lines that end a held line may complete records whose first byte lies in an earlier chunk:
        `starts` is then smaller than `offset`, and records come out in the order they complete.
        Sets `state.held_from` / `state.held_since` for what it holds after this chunk. Never raises
        on any content of `lines`.
        """

    @abstractmethod
    def flush(self, state: FormatState) -> ParsedLines:
        """Emit whatever is held back, as it is (a partial line becomes a record marked `partial: true`)."""
