"""Where the `file` output writes: its path template, confined to its directory, and private files and directories.

`path` is a record template (`common.record_templates`): host facts
(`{host}`), record fields (`{app}`, `{kubernetes.namespace}`) and date parts
of the record's time (`{%Y}` `{%m}` `{%d}` `{%H}`). Records are grouped by the
path they render to; a path with host facts only is one fixed file.

Confinement: every value put into the path is escaped like an S3 key's
(`common.key_escape`): characters outside `0-9 a-z A-Z ! - _ . * ' ( )` are
percent-encoded, `/` included, and a value made of dots only is encoded whole.
So a value can never add a directory level, climb out with `..`, or carry NUL,
TAB or newline; a rendered path has exactly the template's levels and stays
under the directory the template's own text names before its first
placeholder. `check_path_template` refuses templates that would weaken that
(an empty, `.` or `..` level after a placeholder) and file names that could
collide with rotated files: rotation renames `NAME` to `NAME.1`, so a file
name with a placeholder must end with literal text that does not end in a
digit (`{app}.jsonl`), else the value `x.1` would name `x`'s rotated file.

Permissions: files the output creates are 0600 and directories 0700, whatever
the umask (the mode is given at creation and set again with fchmod/chmod,
because the umask may have removed bits). Existing files and directories keep
theirs: an operator may have opened them up on purpose. The modes come from
`collector.private_files`, as the buffers' do.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector.private_files import open_created_private, private_dir
from collector_plugins.common.key_escape import escape_value
from collector_plugins.common.record_templates import RecordTemplate, parse_record_template


def check_path_template(template: str) -> str:
    """Config check of `path`; returns it unchanged or raises ValueError saying what to write instead."""
    parse_record_template(template)
    if template.endswith(("/", os.sep)):
        raise ValueError(f"path {template!r} names a directory; give a file name")
    segments = template.split("/")
    dynamic = False
    for segment in segments:
        has_placeholder = any(kind == "name" for kind, _ in parse_record_template(segment))
        if dynamic and segment in ("", ".", ".."):
            raise ValueError(f"path {template!r}: no empty, '.' or '..' level after a placeholder")
        dynamic = dynamic or has_placeholder
    last = parse_record_template(segments[-1])
    if any(kind == "name" for kind, _ in last):
        kind, text = last[-1]
        if kind == "name" or text[-1].isdigit():
            raise ValueError(
                f"path {template!r}: a file name with a placeholder must end with literal text that does not end "
                "in a digit, such as '.jsonl' (rotated files are named NAME.1, NAME.2...: a value at the end could "
                "name another file's rotated copy)"
            )
    return template


def _fields(record: Any) -> dict[str, Any]:
    if type(record) is dict:
        return record
    to_dict = getattr(record, "to_dict", None)  # a Metric: {name}, {tags.env}, its timestamp
    return to_dict() if to_dict is not None else {}


class FilePaths:
    """The compiled `path` template: `static` is the one file of a path without record fields or dates."""

    def __init__(self, template: str, host: dict[str, str], data_dir: Path) -> None:
        expanded = os.path.expanduser(template) if template.startswith("~") else template
        if not os.path.isabs(expanded):
            base = str(data_dir).replace("{", "{{").replace("}", "}}")
            expanded = os.path.join(base, expanded)
        self.template = RecordTemplate(expanded, host, escape=escape_value)
        self.static: Path | None = Path(self.template.render({})) if self.template.static else None

    def group(self, records: Sequence[Any]) -> dict[str, list[int]]:
        """The indices of `records` per rendered path, in order."""
        render = self.template.render
        groups: dict[str, list[int]] = {}
        for i, record in enumerate(records):
            path = render(_fields(record))
            indices = groups.get(path)
            if indices is None:
                groups[path] = [i]
            else:
                indices.append(i)
        return groups


def make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents with mode 0700 (existing ones are left as they are)."""
    private_dir(directory, existing=False)


def open_private_append(path: Path) -> int:
    """An O_APPEND descriptor on `path`; a file created here is 0600 whatever the umask."""
    return open_created_private(path, os.O_WRONLY | os.O_APPEND)


def last_byte(path: Path, fd: int) -> bytes | None:
    """The last byte of the regular file open as `fd` (b"" when empty); None when it cannot be told.

    Read through a descriptor of its own: the writing one stays write-only (a FIFO or device
    named as the output keeps its semantics, and is never read).
    """
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return None
    if info.st_size == 0:
        return b""
    try:
        reader = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # write-only to us, or gone: append as before
    try:
        return os.pread(reader, 1, os.fstat(reader).st_size - 1)
    finally:
        os.close(reader)
