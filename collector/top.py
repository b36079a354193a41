"""`collector top`: a live table of a running collector's components, from `/status`.

Rates are taken over a sliding window of snapshots (30 s by default), not between
two consecutive ones: the default config's inputs emit every 10 s, so a 1 s
difference would show 0/s between bursts. Totals since start sit next to them.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from typing import Any

from collector.defaults import STATUS_PATH
from collector.units import format_size


def fetch_status(api: str, timeout: float = 2.0) -> dict[str, Any]:
    with urllib.request.urlopen(api.rstrip("/") + STATUS_PATH, timeout=timeout) as response:
        return json.loads(response.read())


class RateWindow:
    """The snapshots of the last `window` seconds; rates are taken against the oldest one kept.

    One snapshot at or before the window's start is kept, so once there is enough
    history the rate always spans the whole window (bursts every 10 s in a 30 s
    window count three bursts, never zero).
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._samples: deque[dict[str, Any]] = deque()

    def add(self, status: dict[str, Any]) -> None:
        self._samples.append(status)
        cutoff = status.get("time", 0) - self.window
        while len(self._samples) > 2 and self._samples[1].get("time", 0) <= cutoff:
            self._samples.popleft()

    def baseline(self) -> dict[str, Any] | None:
        """The oldest snapshot in the window, or None until there are two."""
        return self._samples[0] if len(self._samples) > 1 else None


def _rate(now: dict[str, Any], before: dict[str, Any] | None, key: str, dt: float) -> float | None:
    if before is None or dt <= 0:
        return None
    return max(0.0, (now.get(key, 0) - before.get(key, 0)) / dt)


def _fmt_rate(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "B":
        return format_size(value) + "/s"
    for suffix, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}/s"
    return f"{value:.0f}/s"


def _fmt_count(value: float) -> str:
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}"
    return f"{value:.0f}"


def render(status: dict[str, Any], previous: dict[str, Any] | None, width: int = 120) -> str:
    """The table; rates are against `previous` (the oldest snapshot of the window), totals since start.

    Name, type and state columns are as wide as their longest value: names are never cut.
    """
    dt = status.get("time", 0) - previous.get("time", 0) if previous else 0
    before = {c["name"]: c for c in previous["components"]} if previous else {}
    over = f"rates over the last {dt:.0f}s, totals since start" if previous else "rates: waiting for a second snapshot"
    header = (
        f"collector {status.get('version')}  config {status.get('config')}  "
        f"uptime {status.get('uptime_seconds', 0):.0f}s  healthy {status.get('healthy', True)}  "
        f"ready {status.get('ready')}  "
        f"reloads ok={status.get('reloads', {}).get('success', 0)} "
        f"failed={status.get('reloads', {}).get('failure', 0)}"
    )
    components = [
        c
        for section in ("inputs", "processors", "outputs")
        for c in status.get("components", [])
        if c["section"] == section
    ]
    name_w = max([len("COMPONENT"), *(len(c["name"]) for c in components)]) + 2
    type_w = max([len("TYPE"), *(len(c["type"]) for c in components)]) + 2
    state_w = max([len("STATE"), *(len(c.get("state", "-")) for c in components)]) + 2
    cols = (
        f"{'COMPONENT':<{name_w}}{'TYPE':<{type_w}}{'STATE':<{state_w}}{'IN/s':>10}{'OUT/s':>10}{'BYTES IN/s':>13}"
        f"{'IN':>9}{'OUT':>9}{'QUEUE':>8}{'BUFFER':>18}{'DROPPED':>9}{'ERRORS':>8}{'RETRIES':>8}{'RESTARTS':>9}"
    )
    lines = [header[:width], over, "", cols]
    losses: list[str] = []
    problems = [f"  {p}" for p in status.get("health_problems", [])]
    if not status.get("ready", True) and status.get("ready_reason"):
        problems.append(f"  not ready: {status['ready_reason']}")
    for c in components:
        prev = before.get(c["name"])
        dropped = c.get("dropped_events", {})
        lines.append(
            f"{c['name']:<{name_w}}{c['type']:<{type_w}}{c.get('state', '-'):<{state_w}}"
            f"{_fmt_rate(_rate(c, prev, 'received_events', dt)):>10}"
            f"{_fmt_rate(_rate(c, prev, 'sent_events', dt)):>10}"
            f"{_fmt_rate(_rate(c, prev, 'received_bytes', dt), 'B'):>13}"
            f"{_fmt_count(c.get('received_events', 0)):>9}{_fmt_count(c.get('sent_events', 0)):>9}"
            f"{c.get('queue_events', 0):>8}{_fmt_buffer(c.get('buffer')):>18}{sum(dropped.values()):>9}"
            f"{c.get('errors', 0):>8}{c.get('retries', 0):>8}{c.get('restarts', 0):>9}"
        )
        losses.extend(f"  {c['name']}: {reason} {n}" for reason, n in sorted(dropped.items()) if n)
        problems.extend(_component_problems(c))
    if problems:
        lines += ["", "PROBLEMS", *problems]
    if losses:
        lines += ["", "NOT DELIVERED (loss ledger, since start)", *losses]
    return "\n".join(lines)


def _fmt_buffer(buffer: dict[str, Any] | None) -> str:
    """`disk 1234/12.0MiB`: events held and bytes used, for outputs; `!` while it does not take data."""
    if not buffer:
        return "-"
    mark = "" if buffer.get("accepting", True) else "!"
    return f"{mark}{buffer.get('type', '')[:4]} {int(buffer.get('events', 0))}/{format_size(buffer.get('bytes', 0))}"


def _component_problems(c: dict[str, Any]) -> list[str]:
    """What about this component an operator should look at: a buffer not taking data, failed disk writes."""
    out = []
    buffer = c.get("buffer") or {}
    if not buffer.get("accepting", True):
        what = "disk refuses writes" if buffer.get("condition") == "write_failing" else "full"
        error = f" ({buffer['error']})" if buffer.get("error") else ""
        out.append(f"  {c['name']}: buffer {what}{error} for {buffer.get('blocked_seconds', 0):.0f}s")
    errors = {k: int(buffer.get(f"{k}_errors", 0)) for k in ("write", "fsync", "ledger")}
    if any(errors.values()):
        out.append(
            f"  {c['name']}: disk buffer errors since start: " + " ".join(f"{k}={n}" for k, n in errors.items() if n)
        )
    if c.get("checkpoint_failures"):
        out.append(f"  {c['name']}: {c['checkpoint_failures']} checkpoint writes failed")
    return out


def run_top(api: str, interval: float, once: bool, window: float = 30.0) -> int:
    """Refresh every `interval` s, rates over the last `window` s; `once` prints after one interval."""
    rates = RateWindow(window)
    try:
        while True:
            try:
                status = fetch_status(api)
            except (urllib.error.URLError, OSError) as exc:
                print(f"cannot reach the collector at {api}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
                return 1
            rates.add(status)
            width = shutil.get_terminal_size((120, 40)).columns
            if once:
                if rates.baseline() is None:  # a second sample gives the rates
                    time.sleep(interval)
                    continue
                print(render(status, rates.baseline(), width))
                return 0
            sys.stdout.write("\x1b[H\x1b[2J" + render(status, rates.baseline(), width) + "\n\n(ctrl-c to quit)\n")
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
