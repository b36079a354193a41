"""X-Ray `cause` and the error / fault / throttle flags of a span, as the OpenTelemetry Collector's X-Ray exporter
sets them (its translator `cause.go`):

- every `exception` event becomes one exception (`type`, `message` from `exception.type` / `exception.message`,
  `remote` for client and producer spans); a Python or Java `exception.stacktrace` (by the resource's
  `telemetry.sdk.language`) is parsed into `stack` frames and chained causes, other languages keep no stack;
- without exception events, a span with status ERROR gets one exception whose message is the status message
  (or `http.status_text`), and `http.status_text` is then consumed;
- the flags come from the HTTP status code (`http.status_code`, or the newer `http.response.status_code`):
  4xx is `error`, 429 also `throttle`, 5xx `fault`; without a 4xx/5xx code, status ERROR is `fault`.

Exception ids are random 64-bit hex, as X-Ray asks ("unique among segments in the same trace").
"""

from __future__ import annotations

import os
from typing import Any

STATUS_ERROR = 2
STACK_LANGUAGES = ("python", "java")


def _text(value: Any) -> str:
    return value if type(value) is str else ""


def status_code_of(attrs: dict[str, Any]) -> int | None:
    """The HTTP response status of a span, old or new convention; None when absent or not a number."""
    value = attrs.get("http.status_code")
    if value is None:
        value = attrs.get("http.response.status_code")
    if type(value) is int:
        return value
    if type(value) is str and value.isdigit() and len(value) <= 3:
        return int(value)
    return None


def flags(status_code: int | None, span_status: int) -> tuple[bool, bool, bool]:
    """(error, fault, throttle) of a span."""
    if status_code is not None and 400 <= status_code <= 499:
        return True, False, status_code == 429
    if status_code is not None and 500 <= status_code <= 599:
        return False, True, False
    return False, span_status == STATUS_ERROR, False


def make_cause(
    span: dict[str, Any], attrs: dict[str, Any], resource: dict[str, Any], consumed: set[str]
) -> dict[str, Any] | None:
    """The segment's `cause`, or None. Adds `http.status_text` to `consumed` when it became the message."""
    events = span.get("events") or ()
    status = span.get("status") or {}
    status_code = status.get("code", 0) if type(status) is dict else 0
    remote = span.get("kind") in ("client", "producer")
    language = _text(resource.get("telemetry.sdk.language"))
    exceptions: list[dict[str, Any]] = []
    for event in events:
        if type(event) is not dict or event.get("name") != "exception":
            continue
        event_attrs = event.get("attributes")
        if type(event_attrs) is not dict:
            event_attrs = {}
        exceptions.extend(
            parse_exception(
                _text(event_attrs.get("exception.type")),
                _text(event_attrs.get("exception.message")),
                _text(event_attrs.get("exception.stacktrace")),
                remote,
                language,
            )
        )
    if exceptions:
        return {"exceptions": exceptions}
    if status_code != STATUS_ERROR:
        return None
    message = _text(status.get("message")) if type(status) is dict else ""
    status_text = attrs.get("http.status_text")
    if status_text is not None:
        consumed.add("http.status_text")
        if not message:
            message = _text(status_text)
    if not message:
        return None
    return {"exceptions": [{"id": _new_id(), "message": message}]}


def _new_id() -> str:
    return os.urandom(8).hex()


def _exception(kind: str, message: str, remote: bool) -> dict[str, Any]:
    exception: dict[str, Any] = {"id": _new_id(), "remote": remote}
    if kind:
        exception["type"] = kind
    if message:
        exception["message"] = message
    return exception


def parse_exception(kind: str, message: str, stacktrace: str, remote: bool, language: str) -> list[dict[str, Any]]:
    """One exception (plus the chained causes its stack trace names), with stack frames where we can read them."""
    exceptions = [_exception(kind, message, remote)]
    if not stacktrace:
        return exceptions
    if language == "python":
        _python_stack(stacktrace, exceptions, remote)
    elif language == "java":
        _java_stack(stacktrace, exceptions, remote)
    return exceptions


def _frame(path: str, line: int, label: str) -> dict[str, Any]:
    return {"path": path, "line": line, "label": label}


def _python_stack(stacktrace: str, exceptions: list[dict[str, Any]], remote: bool) -> None:
    """A Python traceback, read bottom-up (innermost frame first, as X-Ray shows stacks); a "During handling
    of the above exception" section becomes the cause of the exception before it."""
    lines = stacktrace.split("\n")
    current = exceptions[0]
    stack: list[dict[str, Any]] = []
    index = len(lines) - 2  # the last line is the exception itself
    while index >= 0:
        line = lines[index]
        if line.startswith("  File "):
            parts = line.split(",")
            if len(parts) == 3 and len(parts[0]) >= 9:
                path = parts[0][8:-1]
                number = parts[1][6:] if parts[1].startswith(" line ") else ""
                label = parts[2][4:] if parts[2].startswith(" in ") else ""
                stack.append(_frame(path, int(number) if number.isdigit() else 0, label))
        elif line.startswith("During handling of the above exception, another exception occurred:"):
            current["stack"] = stack
            stack = []
            previous = index - 1
            while previous >= 0 and not lines[previous].startswith("  File "):
                previous -= 1
            if previous < 0:
                return
            text = "\n".join(lines[previous + 2 : index - 1])
            kind, sep, cause_message = text.partition(":")
            if not sep:
                return
            cause = _exception(kind, cause_message[1:], remote)
            current["cause"] = cause["id"]
            exceptions.append(cause)
            current = cause
            index = previous
            continue
        index -= 1
    current["stack"] = stack


def _java_stack(stacktrace: str, exceptions: list[dict[str, Any]], remote: bool) -> None:
    """A Java stack trace: `\\tat label(path:line)` frames, `Caused by: Type: message` chained causes."""
    lines = stacktrace.splitlines()[1:]
    current = exceptions[0]
    stack: list[dict[str, Any]] = []
    for line in lines:
        if line.startswith("\tat ") and line.endswith(")") and "(" in line:
            paren = line.index("(")
            label = line[4:paren].split("/")[-1]
            path, _, number = line[paren + 1 : -1].partition(":")
            stack.append(_frame(path, int(number) if number.isdigit() else 0, label))
        elif line.startswith("Caused by: "):
            current["stack"] = stack
            stack = []
            kind, _, cause_message = line[len("Caused by: ") :].partition(": ")
            cause = _exception(kind, cause_message, remote)
            current["cause"] = cause["id"]
            exceptions.append(cause)
            current = cause
    current["stack"] = stack
