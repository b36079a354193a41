"""The result of converting one OTLP export request into records.

Every converter (traces, logs, metrics) returns a `Conversion`: the records built from the valid items, how
many items were rejected and why. The receiving server answers with an OTLP `partial_success` when
`rejected` is not zero, so a client learns about invalid items without retrying the valid ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Conversion:
    """Records built from one export request, plus the items that could not be converted."""

    records: list[Any] = field(default_factory=list)
    # Items (spans, log records, data points) that were invalid and left out.
    rejected: int = 0
    # A human-readable reason for the rejections ("" when none): goes into partial_success.error_message.
    error_message: str = ""

    def reject(self, count: int, reason: str) -> None:
        """Count `count` rejected items; the first reason is kept (one line for the client, not a list)."""
        self.rejected += count
        if not self.error_message:
            self.error_message = reason
