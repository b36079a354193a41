"""Notification text and request bodies: plain text, templated JSON, Slack and Microsoft Teams.

A notification is a log record (engine.py) with `rule`, `event` (alarm, realert, resolved,
aggregate), `state`, `group`, `reason`, `value`, `examples`, `labels`, ... Templates name those
fields in braces: `"{rule} is {state} on {host}: {reason}"`; dotted names reach into `labels`
(`{labels.severity}`); an unknown name renders as an empty string, never an error at 3 a.m.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
_COLOURS = {"ALARM": "D00000", "OK": "2EB886", "INSUFFICIENT_DATA": "A0A0A0"}
_SLACK_COLOURS = {"ALARM": "danger", "OK": "good", "INSUFFICIENT_DATA": "#A0A0A0"}


def _when(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return ""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def title(note: dict[str, Any]) -> str:
    """`[ALARM] api_errors (host=web-1): 12 matching records in the last 5m`."""
    event = str(note.get("event"))
    head = {"alarm": note.get("state"), "realert": "STILL ALARM", "resolved": note.get("state")}.get(event, event)
    group = f" ({note.get('query_key')}={note['group']})" if note.get("group") is not None else ""
    return f"[{head}] {note.get('rule')}{group}: {note.get('reason')}"


def summary_text(summary: dict[str, Any]) -> str:
    return f"[{summary['count']} notifications] {summary['rule']}: now {summary['state']}"


def lookup(note: dict[str, Any], path: str) -> Any:
    value: Any = note
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return ""
    return value


def render_text(template: str, note: dict[str, Any]) -> str:
    def field(match: re.Match[str]) -> str:
        value = lookup(note, match.group(1))
        if match.group(1) in ("timestamp", "since"):
            return _when(value)
        return "" if value is None else str(value)

    return _FIELD.sub(field, template)


def render_template(template: Any, note: dict[str, Any]) -> Any:
    """A JSON template: strings rendered; a string that is exactly `{name}` keeps the value's own type."""
    if isinstance(template, str):
        whole = _FIELD.fullmatch(template)
        if whole:
            return lookup(note, whole.group(1))
        return render_text(template, note)
    if isinstance(template, dict):
        return {k: render_template(v, note) for k, v in template.items()}
    if isinstance(template, list):
        return [render_template(v, note) for v in template]
    return template


def _facts(note: dict[str, Any]) -> list[tuple[str, str]]:
    facts = [("Rule", str(note.get("rule"))), ("State", str(note.get("state"))), ("Reason", str(note.get("reason")))]
    if note.get("group") is not None:
        facts.append((str(note.get("query_key")), str(note["group"])))
    if note.get("host"):
        facts.append(("Host", str(note["host"])))
    facts.append(("Since", _when(note.get("since"))))
    facts.extend((k, v) for k, v in (note.get("labels") or {}).items())
    return facts


def slack_body(note: dict[str, Any], text: str) -> dict[str, Any]:
    """A Slack incoming-webhook payload (`text` plus one attachment of fields), also read by Mattermost."""
    return {
        "text": text,
        "attachments": [
            {
                "color": _SLACK_COLOURS.get(str(note.get("state")), "warning"),
                "fields": [{"title": k, "value": v, "short": len(v) < 40} for k, v in _facts(note)],
                "ts": int(note.get("timestamp") or 0),
            }
        ],
    }


def teams_body(note: dict[str, Any], text: str) -> dict[str, Any]:
    """A Microsoft Teams connector MessageCard."""
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": text[:200],
        "themeColor": _COLOURS.get(str(note.get("state")), "FFA500"),
        "title": text,
        "sections": [{"facts": [{"name": k, "value": v} for k, v in _facts(note)], "markdown": True}],
    }
