"""What an output tells the driver before any send: the hard limits of one request.

Limits: each output declares the destination's hard limits once, each with the
documentation page it comes from and the date it was checked. Users may lower
a limit in `batch:`, never raise it (the config validator enforces this).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limit:
    value: int
    source: str  # the documentation page the value comes from
    checked: str  # the date it was last checked against that page


@dataclass(frozen=True, slots=True)
class OutputLimits:
    """Hard limits of one request to the destination; None where there is none."""

    max_events: Limit | None = None
    max_bytes: Limit | None = None
    max_record_bytes: Limit | None = None


# Defaults for destinations without API limits (local files, stdout): big enough to
# amortise per-request cost, small enough to keep a request's memory modest.
DEFAULT_MAX_EVENTS = 2000
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
