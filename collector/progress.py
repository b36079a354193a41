"""Progress of long work: a bar redrawn in place on a terminal, nothing but the summary otherwise.

On a pipe or a file (a cron job, `| tee`, CI) a bar would be hundreds of `\\r`
frames in the log, so only the caller's summary line is printed there.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30
# Redraws at most this often: a bar repainted per batch would cost more than the work on fast paths.
REDRAW_SECONDS = 0.1


class Progress:
    """`update(done)` as work advances, `close()` at the end; draws only when `stream` is a terminal."""

    def __init__(self, total: int, what: str, stream: TextIO | None = None) -> None:
        self.total = total
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._drawn = 0.0
        self._started = time.monotonic()
        self.done = 0

    def update(self, done: int, force: bool = False) -> None:
        self.done = done
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn < REDRAW_SECONDS):
            return
        self._drawn = now
        fraction = min(1.0, done / self.total) if self.total else 1.0
        filled = int(fraction * BAR_WIDTH)
        elapsed = now - self._started
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:4.0%} "
            f"{done}/{self.total} {self.what}  {elapsed:.0f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        """The final frame, then a newline so the summary starts on its own line."""
        if self.enabled:
            self.update(self.done, force=True)
            self.stream.write("\n")
            self.stream.flush()
