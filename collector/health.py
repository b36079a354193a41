"""What /healthz and /readyz report, from the components' counters and their buffers' condition.

- **Liveness** (`/healthz`): the process answers, and nothing is stuck in a way
  only a person or a restart fixes: no component restarted `restart_limit`
  times within `restart_window` (a restart loop), and no output's buffer
  wedged: refusing data for `wedged_after` while its output has nothing left to
  deliver (then no delivery can free room; waiting does not help).
  A buffer full because its destination is down is not wedged: the output
  still holds data to deliver, and delivering it frees the room.
- **Readiness** (`/readyz`): every output can accept data: no buffer whose
  disk refuses writes (at once), none full for `full_after` or longer (a
  short burst that fills a buffer for a moment is backpressure working).

Each failing check is one sentence naming the component, returned with the
verdict so that the probe's body, `/status` and `collector top` say why.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from collector.stats import ComponentStats


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    restart_limit: int = 5
    restart_window: float = 300.0
    wedged_after: float = 300.0
    full_after: float = 10.0


def liveness_problems(stats: list[ComponentStats], policy: HealthPolicy, now: float | None = None) -> list[str]:
    now = time.monotonic() if now is None else now
    problems = []
    for st in stats:
        recent = st.restarts_within(policy.restart_window, now)
        if recent >= policy.restart_limit:
            problems.append(
                f"{st.name}: restarted {recent} times in the last {policy.restart_window:g}s (restart loop; "
                f"last error: {st.last_error})"
            )
        cond = st.condition()
        if cond is None or cond.accepting or cond.pending_events:
            continue
        blocked = cond.blocked_seconds(now)
        if blocked >= policy.wedged_after:
            problems.append(
                f"{st.name}: buffer wedged: refusing data ({_describe(cond.reason, cond.error)}) for "
                f"{blocked:.0f}s with nothing left to deliver"
            )
    return problems


def readiness_problems(stats: list[ComponentStats], policy: HealthPolicy, now: float | None = None) -> list[str]:
    now = time.monotonic() if now is None else now
    problems = []
    for st in stats:
        cond = st.condition()
        if cond is None or cond.accepting:
            continue
        blocked = cond.blocked_seconds(now)
        if cond.reason != "full" or blocked >= policy.full_after:
            problems.append(f"{st.name}: cannot accept data: {_describe(cond.reason, cond.error)} for {blocked:.0f}s")
    return problems


def _describe(reason: str, error: str | None) -> str:
    if reason == "write_failing":
        return f"disk buffer cannot write ({error})" if error else "disk buffer cannot write"
    if reason == "full":
        return "buffer full"
    return reason or "not accepting"
