"""Config problems, each with where it was written and what to do about it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    path: tuple[str | int, ...]
    message: str
    hint: str | None = None
    file: str | None = None
    line: int | None = None
    column: int | None = None

    @property
    def key_path(self) -> str:
        """`outputs.cwl.log_group`, with list indexes as `[0]`."""
        out = ""
        for part in self.path:
            if isinstance(part, int):
                out += f"[{part}]"
            else:
                out += ("." if out else "") + part
        return out or "(top level)"

    def format(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where}: {self.key_path}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.key_path,
            "message": self.message,
            "hint": self.hint,
        }


class ConfigError(Exception):
    """Every problem found in a config, sorted by position."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.file or "", i.line or 0, i.column or 0, i.key_path))
        super().__init__(self.format())

    def format(self) -> str:
        count = len(self.issues)
        head = f"{count} error{'s' if count != 1 else ''} in config:"
        return "\n".join([head, *("  " + issue.format() for issue in self.issues)])


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest choice as a hint, or None when nothing is close."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{matches[0]}`?" if matches else None
