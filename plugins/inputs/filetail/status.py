"""`collector status files`: what every `file`-type input has acknowledged, per file, against the files now.

Reads the checkpoints in the data directory (so it works while the collector is
stopped; while it runs they are at most about a second old) and looks at each file:

- `ok`: the checkpointed file is still at its path, same device + inode + fingerprint;
- `rotated`: renamed away (found by inode in the same directory) or replaced; its
  tail is read after a restart as long as it is still there;
- `stale`: same device + inode but other first bytes, or shorter than the offset
  (truncated, rewritten, inode reused): it will be read from its start;
- `gone`: neither at its path nor in its directory;
- `new`: matches an include pattern but has no checkpoint yet.

`unread` is the file's size minus the checkpointed offset (for `new` files, what
`read_from` would make of them). A file that cannot be read shows `unreadable`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from collector_plugins.inputs.filetail.checkpoints import CheckpointStore, FileCheckpoint
from collector_plugins.inputs.filetail.globs import GlobSet
from collector_plugins.inputs.filetail.identity import Fingerprint, still_matches
from collector_plugins.inputs.filetail.search import find_by_inode

if TYPE_CHECKING:  # pydantic models are heavy; `collector --help` imports this module
    from collector_plugins.inputs.filetail.config import FileInputConfig


def _same_start(path: str, fingerprint: Fingerprint) -> bool | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return still_matches(fd, fingerprint)
    except OSError:
        return None
    finally:
        os.close(fd)


def entry_status(entry: FileCheckpoint) -> dict[str, Any]:
    row: dict[str, Any] = {
        "path": entry.path,
        "identity": f"{entry.dev}:{entry.ino}",
        "fingerprint": str(entry.fingerprint),
        "offset": entry.offset,
        "size": None,
        "unread": None,
        "state": "gone",
    }
    try:
        st = os.stat(entry.path)
        here = (st.st_dev, st.st_ino) == (entry.dev, entry.ino)
    except OSError:
        here = False
    path: str | None = entry.path if here else find_by_inode(os.path.dirname(entry.path), entry.dev, entry.ino)
    if path is None:
        return row
    try:
        size = os.stat(path).st_size
    except OSError:
        return row
    same = _same_start(path, entry.fingerprint)
    row["size"] = size
    if same is None:
        row["state"] = "unreadable"
    elif not same or size < entry.offset:
        row["state"] = "stale"
        row["unread"] = size
    else:
        row["state"] = "ok" if here and not entry.rotated else "rotated"
        row["unread"] = size - entry.offset
    if path != entry.path:
        row["now_at"] = path
    return row


def input_status(name: str, config: FileInputConfig, data_dir: Path) -> list[dict[str, Any]]:
    store = CheckpointStore(data_dir / "components" / name)
    try:
        entries, _bad = store.load()
    except Exception as exc:  # a broken checkpoint is reported, not fatal to the listing
        return [{"input": name, "path": str(store.path), "state": f"checkpoint unreadable: {exc}"}]
    rows = [{"input": name, **entry_status(e)} for e in entries]
    known = {(e.dev, e.ino) for e in entries}
    for path, st in sorted(GlobSet(config.include, config.exclude).scan().items()):
        if (st.st_dev, st.st_ino) in known:
            continue
        rows.append(
            {
                "input": name,
                "path": path,
                "identity": f"{st.st_dev}:{st.st_ino}",
                "fingerprint": None,
                "offset": None,
                "size": st.st_size,
                "unread": st.st_size if config.read_from == "beginning" else 0,
                "state": "new",
            }
        )
    return rows


def collect(config: Any) -> list[dict[str, Any]]:
    """Rows for every input of `config` (a loaded `collector.config.Config`) that is a `file` input or a subclass."""
    from collector_plugins.inputs.file_input import FileInput

    rows: list[dict[str, Any]] = []
    for name, spec in config.graph.components.items():
        if spec.section == "inputs" and issubclass(spec.plugin, FileInput):
            rows.extend(input_status(name, spec.config, config.data_dir))
    return rows


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def render_text(rows: list[dict[str, Any]]) -> str:
    header = ("INPUT", "STATE", "IDENTITY", "FINGERPRINT", "OFFSET", "SIZE", "UNREAD", "PATH")
    table = [header] + [
        (
            _cell(r.get("input")),
            _cell(r.get("state")),
            _cell(r.get("identity")),
            _cell(r.get("fingerprint")),
            _cell(r.get("offset")),
            _cell(r.get("size")),
            _cell(r.get("unread")),
            _cell(r.get("path")) + (f" (now {r['now_at']})" if r.get("now_at") else ""),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1] for row in table
    ]
    return "\n".join(lines)


def run(args: Any) -> int:
    """`collector status files -c CONFIG [--format json]`; exit 0, or 2 for an invalid config."""
    from collector.commands import load_config

    rows = collect(load_config(args.config))
    if args.format == "json":
        print(json.dumps({"files": rows}, indent=2))
    elif rows:
        print(render_text(rows))
    else:
        print("no file inputs in this config, or no files yet")
    return 0


class StatusCommand:
    """`collector status files`, registered in the `node_collector.commands` entry-point group."""

    name = "status"
    help = "inspect input positions (works while the collector is stopped)"
    description = "Show what the inputs have read and had acknowledged, from the data directory."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from collector.commands import add_config_argument

        sub = parser.add_subparsers(dest="status_command", metavar="WHAT", required=True)
        files = sub.add_parser(
            "files",
            help="per watched file: identity, checkpointed offset, size, unread bytes",
            description="For every file-type input: each checkpointed or matching file with its device:inode, "
            "fingerprint, acknowledged offset, current size and unread bytes.",
        )
        add_config_argument(files)
        files.add_argument("--format", choices=["text", "json"], default="text")

    def run(self, args: argparse.Namespace) -> int:
        return run(args)
