"""Include / exclude glob patterns, with `**`, and the directory walk that applies them.

Pattern syntax (matched against the whole absolute path):

- `*` any run of characters within one path component, `?` one character, `[abc]` /
  `[!abc]` a character class;
- `**` as a whole component: any number of directories (zero included), so
  `/var/log/**/*.log` matches `/var/log/a.log` and `/var/log/x/y/a.log`.

An `exclude` pattern without a `/` is matched against the file name only
(`*.gz`), one with a `/` against the whole path.

The directory that a pattern's wildcards start below is its *base*: the walk (and
the filesystem watch) starts there, and descends only as deep as the pattern can
match, unless the pattern has `**`. Symbolic links to files are followed (the file
they point to is what is read); links to directories are not descended into.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

_MAGIC = re.compile(r"[*?\[]")


def _component_regex(component: str) -> str:
    out, i, n = [], 0, len(component)
    while i < n:
        c = component[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < n and component[j] in "!^":
                j += 1
            if j < n and component[j] == "]":
                j += 1
            while j < n and component[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))  # no closing bracket: a literal "["
            else:
                body = component[i + 1 : j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def translate(pattern: str) -> str:
    """The regular expression (for `re.fullmatch`) of an absolute glob pattern."""
    parts = pattern.split("/")
    out = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]*/)*")
        else:
            out.append(_component_regex(part) + ("" if last else "/"))
    return "".join(out)


@dataclass(frozen=True)
class Pattern:
    text: str
    regex: re.Pattern[str]
    base: str
    """The directory below which the pattern's wildcards start."""
    depth: int | None
    """How many components below `base` a match has; None with `**` (any depth)."""

    @classmethod
    def parse(cls, text: str) -> Pattern:
        path = os.path.normpath(os.path.expanduser(text))
        if not os.path.isabs(path):
            raise ValueError(f"include pattern {text!r} is not an absolute path")
        parts = path.split("/")
        fixed = 0
        while fixed < len(parts) and not _MAGIC.search(parts[fixed]):
            fixed += 1
        if fixed == len(parts):
            base, rest = os.path.dirname(path), [parts[-1]]  # a plain file name: watch its directory
        else:
            base, rest = "/".join(parts[:fixed]) or "/", parts[fixed:]
        depth = None if "**" in rest else len(rest)
        return cls(text, re.compile(translate(path)), base, depth)

    def matches(self, path: str) -> bool:
        return self.regex.fullmatch(path) is not None


class GlobSet:
    def __init__(self, include: list[str], exclude: list[str]) -> None:
        self.include = [Pattern.parse(p) for p in include]
        self._exclude_path = [re.compile(translate(os.path.expanduser(p))) for p in exclude if "/" in p]
        self._exclude_name = [re.compile(translate(p)) for p in exclude if "/" not in p]

    def matches(self, path: str) -> bool:
        if not any(p.matches(path) for p in self.include):
            return False
        return not self.excluded(path)

    def excluded(self, path: str) -> bool:
        if any(r.fullmatch(path) for r in self._exclude_path):
            return True
        name = path.rsplit("/", 1)[-1]
        return any(r.fullmatch(name) for r in self._exclude_name)

    def watch_roots(self) -> list[tuple[str, bool]]:
        """(directory, recursive) to watch for events, without directories already covered by another."""
        roots: dict[str, bool] = {}
        for p in self.include:
            recursive = p.depth is None or p.depth > 1
            roots[p.base] = roots.get(p.base, False) or recursive
        out = []
        for base, recursive in sorted(roots.items()):
            covered = any(
                other_recursive and base.startswith(other.rstrip("/") + "/")
                for other, other_recursive in roots.items()
                if other != base
            )
            if not covered:
                out.append((base, recursive))
        return out

    def scan(self) -> dict[str, os.stat_result]:
        """Every regular file (or link to one) matching now, with its `stat` (links followed)."""
        found: dict[str, os.stat_result] = {}
        for pattern in self.include:
            for path in _walk(pattern):
                if path in found or not pattern.matches(path) or self.excluded(path):
                    continue
                try:
                    st = os.stat(path)
                except OSError:
                    continue  # gone meanwhile, or a dangling link
                if stat.S_ISREG(st.st_mode):
                    found[path] = st
        return found


def _walk(pattern: Pattern) -> list[str]:
    base = pattern.base
    paths: list[str] = []
    base_depth = base.rstrip("/").count("/")
    for root, dirs, files in os.walk(base, onerror=None):
        level = root.rstrip("/").count("/") - base_depth  # components of root below base
        if pattern.depth is not None and level + 1 >= pattern.depth:
            dirs.clear()  # a match is `depth` components below base: files at this level are the last ones
        if pattern.depth is None or level + 1 == pattern.depth:
            prefix = root if root.endswith("/") else root + "/"
            paths.extend(prefix + name for name in files)
    return paths
