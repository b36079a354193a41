"""`collector top`: a live table of a running collector's components, from `/status`."""

from __future__ import annotations

import json
import shutil
import sys
import time
import urllib.error
import urllib.request
from typing import Any

from collector.defaults import STATUS_PATH
from collector.units import format_size


def fetch_status(api: str, timeout: float = 2.0) -> dict[str, Any]:
    with urllib.request.urlopen(api.rstrip("/") + STATUS_PATH, timeout=timeout) as response:
        return json.loads(response.read())


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


def render(status: dict[str, Any], previous: dict[str, Any] | None, width: int = 120) -> str:
    dt = status.get("time", 0) - previous.get("time", 0) if previous else 0
    before = {c["name"]: c for c in previous["components"]} if previous else {}
    header = (
        f"collector {status.get('version')}  config {status.get('config')}  "
        f"uptime {status.get('uptime_seconds', 0):.0f}s  healthy {status.get('healthy', True)}  "
        f"ready {status.get('ready')}  "
        f"reloads ok={status.get('reloads', {}).get('success', 0)} "
        f"failed={status.get('reloads', {}).get('failure', 0)}"
    )
    cols = (
        f"{'COMPONENT':<22}{'TYPE':<16}{'STATE':<11}{'IN/s':>10}{'OUT/s':>10}{'BYTES IN/s':>13}"
        f"{'QUEUE':>8}{'BUFFER':>18}{'DROPPED':>9}{'ERRORS':>8}{'RETRIES':>8}{'RESTARTS':>9}"
    )
    lines = [header[:width], "", cols]
    losses: list[str] = []
    problems = [f"  {p}" for p in status.get("health_problems", [])]
    if not status.get("ready", True) and status.get("ready_reason"):
        problems.append(f"  not ready: {status['ready_reason']}")
    for section in ("inputs", "processors", "outputs"):
        for c in (c for c in status.get("components", []) if c["section"] == section):
            prev = before.get(c["name"])
            dropped = c.get("dropped_events", {})
            lines.append(
                f"{c['name'][:21]:<22}{c['type'][:15]:<16}{c.get('state', '-')[:10]:<11}"
                f"{_fmt_rate(_rate(c, prev, 'received_events', dt)):>10}"
                f"{_fmt_rate(_rate(c, prev, 'sent_events', dt)):>10}"
                f"{_fmt_rate(_rate(c, prev, 'received_bytes', dt), 'B'):>13}"
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


def run_top(api: str, interval: float, once: bool) -> int:
    previous: dict[str, Any] | None = None
    try:
        while True:
            try:
                status = fetch_status(api)
            except (urllib.error.URLError, OSError) as exc:
                print(f"cannot reach the collector at {api}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
                return 1
            width = shutil.get_terminal_size((120, 40)).columns
            if once:
                if previous is None:  # a second sample gives the rates
                    previous = status
                    time.sleep(interval)
                    continue
                print(render(status, previous, width))
                return 0
            sys.stdout.write("\x1b[H\x1b[2J" + render(status, previous, width) + "\n\n(ctrl-c to quit)\n")
            sys.stdout.flush()
            previous = status
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
