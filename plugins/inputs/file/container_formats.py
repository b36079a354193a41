"""Container runtime log files: Docker's `json-file` and the CRI format, lines joined back.

What the runtimes write (checked against their sources):

- **docker** (moby `daemon/logger/jsonfilelog`): one JSON object per line,
  `{"log":"text\\n","stream":"stdout","time":"2016-10-20T18:39:20.57606443Z"}`
  plus `attrs` when `--log-opt labels/env/tag` ask for it. The log copier reads
  a stream into a 16 KiB buffer: a line longer than that is written as several
  entries, each but the last without the trailing `"\\n"` in `log`, all with
  the first part's time. A stream that ends without a newline leaves its last
  entry without one for good.
- **cri** (kubelet `parseCRILog`, containerd `pkg/cri/io/logger.go`, CRI-O):
  `<RFC3339Nano time> <stdout|stderr> <tags> <text>`, where the first of the
  `:`-separated tags is `P` (partial: more of this line follows) or `F` (full:
  the line ends here). containerd cuts lines at `max_container_log_line_size`
  (16 KiB by default) and drops the `\\r` of a `\\r\\n` line end; each part has
  its own time; the time is local, so it may carry an offset.

Both runtimes write stdout and stderr into one file, so parts of a stdout line
and of a stderr line interleave: partial lines are joined per stream. A joined
message gets the time of its first part and loses one trailing `\\r` (TTY
output). Records come out in the order their lines complete.

A message longer than `max_message_bytes` (bytes of text for cri, characters
for docker) is not held whole: what is joined so far is emitted, cut at the
limit, with `truncated: true`, and the rest of the line follows as further
records with `continuation: true` (nothing is lost, memory stays bounded).
Each such message counts once as `message too long` in `state.errors`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from collector_plugins.common.timestamps import rfc3339_epoch
from collector_plugins.inputs.file.line_formats import FormatState, LineFormat, ParsedLines

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError
_CRI_STREAMS = {b"stdout": "stdout", b"stderr": "stderr"}

TOO_LONG = "message too long"


class _Pending:
    """The parts of one stream's unfinished line."""

    __slots__ = ("continued", "extra", "parts", "since", "size", "start", "timestamp")

    def __init__(self, start: int, timestamp: float, since: float, extra: Any) -> None:
        self.parts: list[Any] = []
        self.size = 0
        self.start = start
        self.timestamp = timestamp
        self.since = since
        self.extra = extra
        self.continued = False  # an earlier piece of this line was already emitted (it was too long)


class ContainerFormat(LineFormat):
    """What both formats share: per-stream joining of partial lines, the size cap, held positions.

    `ContainerFormat(max_message_bytes=...)`: see the module's docstring for the cap.
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be at least 1")
        self.max_message_bytes = max_message_bytes

    def new_state(self) -> FormatState:
        state = FormatState()
        state.extra["pending"] = {}
        return state

    # Subclasses: how parts are joined into a message's text.
    def _text(self, joined: Any) -> str:
        raise NotImplementedError

    def _join(self, parts: list[Any]) -> Any:
        raise NotImplementedError

    def _record(self, pending: _Pending, text: str, stream: str) -> dict[str, Any]:
        record: dict[str, Any] = {"timestamp": pending.timestamp, "message": text, "stream": stream}
        if pending.extra is not None:
            record["attrs"] = pending.extra
        if pending.continued:
            record["continuation"] = True
        return record

    def _cut_point(self, joined: Any) -> int:
        return self.max_message_bytes

    def _cut(self, state: FormatState, pending: _Pending, joined: Any, stream: str, out: ParsedLines) -> Any:
        """Emit pieces of `joined` (marked truncated) until at most `max_message_bytes` is left; returns the rest."""
        if not pending.continued:
            state.errors[TOO_LONG] += 1
        while len(joined) > self.max_message_bytes:
            cut = self._cut_point(joined)
            record = self._record(pending, self._text(joined[:cut]), stream)
            record["truncated"] = True
            out.records.append(record)
            out.starts.append(pending.start)
            pending.continued = True
            joined = joined[cut:]
        return joined

    def _add_part(
        self,
        state: FormatState,
        pendings: dict[str, _Pending],
        stream: str,
        part: Any,
        final: bool,
        here: int,
        timestamp: float,
        extra: Any,
        out: ParsedLines,
        now: float,
    ) -> None:
        """Slow path: a part that starts or continues a held line, or a single line over the cap."""
        pending = pendings.get(stream)
        if pending is None:
            pending = _Pending(here, timestamp, now, extra)
            pendings[stream] = pending
        pending.parts.append(part)
        pending.size += len(part)
        if pending.size > self.max_message_bytes:
            # The rest (never empty) lies in this line: where a reader resuming from here finds it.
            rest = self._cut(state, pending, self._join(pending.parts), stream, out)
            pending.parts = [rest]
            pending.size = len(rest)
            pending.start = here
            pending.since = now
        if final:
            del pendings[stream]
            text = self._text(self._join(pending.parts))
            if text.endswith("\r"):
                text = text[:-1]
            out.records.append(self._record(pending, text, stream))
            out.starts.append(pending.start)

    def flush(self, state: FormatState) -> ParsedLines:
        pendings: dict[str, _Pending] = state.extra["pending"]
        out = ParsedLines([], [])
        for stream, pending in sorted(pendings.items(), key=lambda item: item[1].start):
            record = self._record(pending, self._text(self._join(pending.parts)), stream)
            record["partial"] = True
            out.records.append(record)
            out.starts.append(pending.start)
        pendings.clear()
        state.held_from = None
        state.held_since = 0.0
        return out

    @staticmethod
    def _update_held(state: FormatState, pendings: dict[str, _Pending]) -> None:
        if not pendings:
            state.held_from = None
            state.held_since = 0.0
        elif len(pendings) == 1:
            (pending,) = pendings.values()
            state.held_from = pending.start
            state.held_since = pending.since
        else:
            state.held_from = min(p.start for p in pendings.values())
            state.held_since = min(p.since for p in pendings.values())

    @staticmethod
    def _bad(state: FormatState, out: ParsedLines, line: bytes, here: int, reason: str) -> None:
        """A line kept as it is: its text, the time it was read and why it could not be parsed."""
        state.errors[reason] += 1
        text = line.decode("utf-8", "replace")
        if text.endswith("\r"):
            text = text[:-1]
        out.records.append({"timestamp": time.time(), "message": text, "parse_error": reason})
        out.starts.append(here)


class DockerFormat(ContainerFormat):
    """Docker's `json-file` log driver (`/var/lib/docker/containers/<id>/<id>-json.log`)."""

    name: ClassVar[str] = "docker"

    def _join(self, parts: list[Any]) -> Any:
        return parts[0] if len(parts) == 1 else "".join(parts)

    def _text(self, joined: Any) -> str:
        return joined

    def parse(self, state: FormatState, lines: Sequence[bytes], offset: int) -> ParsedLines:
        out = ParsedLines([], [])
        records, starts = out.records, out.starts
        pendings: dict[str, _Pending] = state.extra["pending"]
        cap = self.max_message_bytes
        now = 0.0
        here = offset
        for line in lines:
            start = here
            here += len(line) + 1
            try:
                doc = _loads(line)
            except _JSONDecodeError:
                doc = _loads_invalid_utf8(line)
                if doc is None:
                    self._bad(state, out, line, start, "invalid JSON")
                    continue
            if type(doc) is not dict:
                self._bad(state, out, line, start, "not a JSON object")
                continue
            log = doc.get("log")
            stream = doc.get("stream")
            stamp = doc.get("time")
            if type(log) is not str or type(stream) is not str or type(stamp) is not str:
                self._bad(state, out, line, start, "missing log, stream or time")
                continue
            if stream != "stdout" and stream != "stderr":  # moby writes no other; bounds the streams held
                self._bad(state, out, line, start, "unknown stream")
                continue
            timestamp = rfc3339_epoch(stamp)
            if timestamp is None:
                self._bad(state, out, line, start, "invalid time")
                continue
            final = log.endswith("\n")
            if final:
                log = log[:-1]
                # The common case: a whole line.
                if (not pendings or stream not in pendings) and len(log) <= cap:
                    if log.endswith("\r"):
                        log = log[:-1]
                    record = {"timestamp": timestamp, "message": log, "stream": stream}
                    attrs = doc.get("attrs")
                    if attrs is not None:
                        record["attrs"] = attrs
                    records.append(record)
                    starts.append(start)
                    continue
            if not now:
                now = time.monotonic()
            self._add_part(state, pendings, stream, log, final, start, timestamp, doc.get("attrs"), out, now)
        self._update_held(state, pendings)
        return out


def _loads_invalid_utf8(line: bytes) -> Any:
    """The document in a line that is not valid UTF-8 (invalid bytes become U+FFFD); None if not JSON at all."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return _loads(line.decode("utf-8", "replace"))
        except _JSONDecodeError:
            return None
    return None


class CriFormat(ContainerFormat):
    """The CRI log format of kubelet-managed containers (containerd, CRI-O): `/var/log/pods/...`."""

    name: ClassVar[str] = "cri"

    def _join(self, parts: list[Any]) -> Any:
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _text(self, joined: Any) -> str:
        return joined.decode("utf-8", "replace")

    def _cut_point(self, joined: Any) -> int:
        # Back off to the start of a UTF-8 sequence (at most 3 bytes) so that no character is split.
        cut = self.max_message_bytes
        for candidate in range(cut, max(cut - 3, 1) - 1, -1):
            if joined[candidate] & 0xC0 != 0x80:
                return candidate
        return cut

    def parse(self, state: FormatState, lines: Sequence[bytes], offset: int) -> ParsedLines:
        out = ParsedLines([], [])
        records, starts = out.records, out.starts
        pendings: dict[str, _Pending] = state.extra["pending"]
        cap = self.max_message_bytes
        streams = _CRI_STREAMS
        now = 0.0
        here = offset
        for line in lines:
            start = here
            here += len(line) + 1
            fields = line.split(b" ", 3)
            if len(fields) == 4:
                stamp, stream_name, tags, content = fields
            elif len(fields) == 3:  # `... F` with nothing after the tag: an empty line, leniently
                stamp, stream_name, tags = fields
                content = b""
            else:
                self._bad(state, out, line, start, "missing time, stream or tag")
                continue
            stream = streams.get(stream_name)
            if stream is None:
                self._bad(state, out, line, start, "unknown stream")
                continue
            timestamp = rfc3339_epoch(stamp.decode("latin-1"))
            if timestamp is None:
                self._bad(state, out, line, start, "invalid time")
                continue
            if tags == b"F":
                final = True
            elif tags == b"P":
                final = False
            else:
                tag = tags.split(b":", 1)[0]  # forward compatible: further tags may follow the first
                if tag == b"F":
                    final = True
                elif tag == b"P":
                    final = False
                else:
                    self._bad(state, out, line, start, "unknown tag")
                    continue
            # The common case: a whole line.
            if final and (not pendings or stream not in pendings) and len(content) <= cap:
                text = content.decode("utf-8", "replace")
                if text.endswith("\r"):
                    text = text[:-1]
                records.append({"timestamp": timestamp, "message": text, "stream": stream})
                starts.append(start)
                continue
            if not now:
                now = time.monotonic()
            self._add_part(state, pendings, stream, content, final, start, timestamp, None, out, now)
        self._update_held(state, pendings)
        return out


FORMATS: dict[str, type[ContainerFormat]] = {"docker": DockerFormat, "cri": CriFormat}
"""Line formats by the name the `file` input's `format` option uses."""
