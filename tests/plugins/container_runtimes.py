"""Log files written the way the container runtimes write them, for the container-log tests.

No runtime runs on the test machines, so these follow the runtimes' code:

- `docker_json_lines`: moby's log copier (`daemon/logger/copier.go`: a 16 KiB buffer,
  a line that fills it without a newline goes out as a partial entry, every part with
  the first part's time; the last bytes of a stream without newline stay partial) and
  the json-file driver (`jsonfilelog.go`, `jsonlogbytes.go`: `"\\n"` appended to the
  `log` of a complete line only; Go's JSON string escaping: `<>&`, control characters,
  U+2028/9 as `\\uXXXX`, invalid UTF-8 as U+FFFD; `time` in RFC3339Nano, UTC).
- `cri_lines`: containerd's CRI logger (`pkg/cri/io/logger.go`: `<time> <stream> <P|F>
  <content>`, content cut at `max_len` (16 KiB by default) into `P` parts, a `\\r\\n`
  line end loses its `\\r`, each part stamped with its own time, local time in
  RFC3339Nano, so possibly with an offset).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone

DOCKER_BUFFER = 16 * 1024
CRI_MAX_LEN = 16 * 1024


def go_rfc3339nano(ns: int, offset_minutes: int = 0) -> str:
    """Go's `time.Format(time.RFC3339Nano)`: trailing zeros of the fraction trimmed, `Z` for UTC."""
    zone = UTC if offset_minutes == 0 else timezone(timedelta(minutes=offset_minutes))
    moment = datetime.fromtimestamp(ns // 1_000_000_000, zone)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    if fraction:
        text += "." + fraction
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


_GO_ESCAPES = {ord("\\"): "\\\\", ord('"'): '\\"', ord("\n"): "\\n", ord("\r"): "\\r"}


def go_json_string(data: bytes) -> str:
    """moby's `ffjsonWriteJSONBytesAsString`: bytes as a JSON string the way Go's encoder escapes them."""
    text = data.decode("utf-8", "surrogateescape")
    out = ['"']
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append("\\ufffd")
        elif code in _GO_ESCAPES:
            out.append(_GO_ESCAPES[code])
        elif code < 0x20 or char in "<>&" or code in (0x2028, 0x2029):
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def docker_entry(log: bytes, stream: str, ns: int, attrs: str | None = None) -> bytes:
    """One json-file line (without its newline), fields in moby's order."""
    fields = [f'"log":{go_json_string(log)}', f'"stream":"{stream}"']
    if attrs is not None:
        fields.append(f'"attrs":{attrs}')
    fields.append(f'"time":"{go_rfc3339nano(ns)}"')
    return ("{" + ",".join(fields) + "}").encode()


def docker_json_lines(
    writes: Iterable[tuple[str, bytes]],
    start_ns: int = 1_795_687_200_000_000_000,
    step_ns: int = 1_500,
    buffer_size: int = DOCKER_BUFFER,
) -> list[bytes]:
    """The json-file lines for what containers wrote: `(stream, bytes)` in the order they reached docker.

    Each stream is cut like the copier cuts it (per stream: interleaving happens between
    entries, never inside one). A stream's bytes after its last newline become a final
    partial entry, as at container exit. `buffer_size` is fixed in moby; the fuzz tests
    shrink it to reach partial lines with small inputs.
    """
    lines: list[bytes] = []
    pending: dict[str, bytes] = {}
    partial_ns: dict[str, int] = {}
    now = start_ns

    def emit(stream: str, log: bytes, partial: bool) -> None:
        nonlocal now
        now += step_ns
        if partial and stream not in partial_ns:
            partial_ns[stream] = now
        stamp = partial_ns.get(stream, now)
        if not partial:
            partial_ns.pop(stream, None)
        lines.append(docker_entry(log if partial else log + b"\n", stream, stamp))

    for stream, data in writes:
        buffer = pending.get(stream, b"") + data
        while True:
            newline = buffer.find(b"\n")
            if newline >= 0 and newline < buffer_size:
                emit(stream, buffer[:newline], partial=False)
                buffer = buffer[newline + 1 :]
            elif len(buffer) >= buffer_size:
                emit(stream, buffer[:buffer_size], partial=True)
                buffer = buffer[buffer_size:]
            else:
                break
        pending[stream] = buffer
    for stream, rest in pending.items():
        if rest:
            emit(stream, rest, partial=True)
    return lines


def cri_lines(
    writes: Iterable[tuple[str, bytes]],
    start_ns: int = 1_795_687_200_000_000_000,
    step_ns: int = 1_500,
    max_len: int = CRI_MAX_LEN,
    offset_minutes: int = 0,
) -> list[bytes]:
    """The CRI log lines containerd writes for what containers wrote, `(stream, bytes)` in arrival order."""
    lines: list[bytes] = []
    pending: dict[str, bytes] = {}
    now = start_ns

    def emit(stream: str, tag: str, content: bytes) -> None:
        nonlocal now
        now += step_ns
        lines.append(f"{go_rfc3339nano(now, offset_minutes)} {stream} {tag} ".encode() + content)

    for stream, data in writes:
        buffer = pending.get(stream, b"") + data
        while True:
            newline = buffer.find(b"\n")
            content_len = len(buffer) if newline < 0 else newline - (buffer[newline - 1 : newline] == b"\r")
            if content_len > max_len:
                emit(stream, "P", buffer[:max_len])
                buffer = buffer[max_len:]
            elif newline >= 0:
                content = buffer[:newline]
                emit(stream, "F", content[:-1] if content.endswith(b"\r") else content)
                buffer = buffer[newline + 1 :]
            else:
                break
        pending[stream] = buffer
    for stream, rest in pending.items():
        if rest:
            emit(stream, "P", rest)
    return lines


def offsets(lines: list[bytes], base: int = 0) -> Iterator[int]:
    """The file offset of each line (each followed by one newline byte)."""
    position = base
    for line in lines:
        yield position
        position += len(line) + 1
