"""Read a YAML config into plain Python values, keeping where every key came from.

PyYAML's composer gives nodes with line and column marks; this module walks
those nodes itself so that every value's key path maps to its position in the
file, and so that `${VAR}` substitution happens per scalar (a substituted value
never shifts the line numbers of what follows).

Substitution, inside any scalar:
- `${VAR}`: the variable's value; an error if it is unset.
- `${VAR:-default}`: the default when VAR is unset or empty.
- `${file:/path}`: the file's content, trailing newline removed (for secrets
  mounted as files).
- `$$`: a literal `$`.
A plain (unquoted) scalar that is exactly one substitution is re-typed after
substitution, so `port: ${PORT:-8080}` is the integer 8080.

Provenance: the source map remembers which scalars had substitutions (the
expressions and the text each one brought in), so that no error message ever
echoes a substituted value, and the text of a re-typed scalar, so that a
string field given `${KEY}` gets exactly the variable's text (`007`, not 7).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from collector.config.errors import ConfigIssue

Path_ = tuple[str | int, ...]

_SUBST_RE = re.compile(r"\$\$|\$\{([^}]*)\}")
_VAR_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class SourceMap:
    """Where each key path was written: path -> (line, column), both 1-based."""

    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)  # where each key is written
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)  # where each value starts
    # Scalars with substitutions: path -> the expressions (`KEY`, `file:/run/key`), and the texts
    # they brought in (each expression's value and the whole scalar after substitution).
    substituted: dict[Path_, tuple[str, ...]] = field(default_factory=dict)
    substituted_texts: dict[Path_, set[str]] = field(default_factory=dict)
    # Plain scalars re-typed after substitution (`${PORT}` -> 8080): path -> the substituted text.
    retyped: dict[Path_, str] = field(default_factory=dict)

    def substitutions_near(self, path: Path_) -> set[str]:
        """The substituted texts at `path`, above it or below it (what an issue there could echo)."""
        n = len(path)
        return {
            text
            for where, texts in self.substituted_texts.items()
            if where[:n] == path or path[: len(where)] == where
            for text in texts
        }

    def locate(self, path: Path_, value: bool = False) -> tuple[int | None, int | None]:
        """The position of `path` (its value's, if asked), or of its nearest written ancestor."""
        probe = tuple(path)
        if value and probe in self.values:
            return self.values[probe]
        while True:
            if probe in self.positions:
                return self.positions[probe]
            if not probe:
                return None, None
            probe = probe[:-1]


@dataclass
class LoadedSource:
    data: Any
    source_map: SourceMap
    issues: list[ConfigIssue]


class _Builder:
    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        self.file = file
        self.environ = environ
        self.source_map = SourceMap(file)
        self.issues: list[ConfigIssue] = []
        self._constructor = yaml.SafeLoader("")
        self._resolver = yaml.SafeLoader("")

    def _issue(self, path: Path_, node: yaml.Node, message: str, hint: str | None = None) -> None:
        self.issues.append(
            ConfigIssue(
                path=path,
                message=message,
                hint=hint,
                file=self.file,
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
            )
        )

    def build(self, node: yaml.Node, path: Path_) -> Any:
        here = (node.start_mark.line + 1, node.start_mark.column + 1)
        self.source_map.positions.setdefault(path, here)
        self.source_map.values[path] = here
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        self._constructor.flatten_mapping(node)  # resolves `<<:` merge keys
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str | int | float | bool) or key is None:
                self._issue(path, key_node, "mapping keys must be plain strings")
                continue
            key = str(key)
            child = (*path, key)
            if key in out:
                self._issue(child, key_node, f"duplicate key `{key}`", "YAML keeps only the last one; remove one")
            # The key's own position is the most useful place to point at.
            self.source_map.positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            out[key] = self.build(value_node, child)
        return out

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        text = node.value
        if "$" in text and node.tag == "tag:yaml.org,2002:str":
            expressions: list[str] = []
            texts: set[str] = set()
            substituted = self._substitute(text, node, path, expressions, texts)
            if expressions:
                self.source_map.substituted[path] = tuple(expressions)
                self.source_map.substituted_texts[path] = {t for t in (*texts, substituted) if t}
            if node.style is None:
                # Plain scalar: type it as if the substituted text had been written.
                tag = self._resolver.resolve(yaml.ScalarNode, substituted, (True, False))
                value = self._constructor.construct_object(yaml.ScalarNode(tag, substituted))
                if expressions and not isinstance(value, str):
                    self.source_map.retyped[path] = substituted
                return value
            return substituted
        return self._constructor.construct_object(node)

    def _substitute(self, text: str, node: yaml.Node, path: Path_, expressions: list[str], texts: set[str]) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            expr = match.group(1)
            expressions.append(expr)
            value = resolve(expr)
            texts.add(value)
            return value

        def resolve(expr: str) -> str:
            if expr.startswith("file:"):
                file_path = expr[5:]
                try:
                    return Path(file_path).read_text(encoding="utf-8").rstrip("\n")
                except OSError as exc:
                    self._issue(path, node, f"cannot read `${{{expr}}}`: {exc.strerror}")
                    return ""
            name, sep, default = expr.partition(":-")
            if not _VAR_NAME_RE.match(name):
                self._issue(
                    path, node, f"invalid substitution `${{{expr}}}`", "use ${VAR}, ${VAR:-default} or ${file:/path}"
                )
                return ""
            value = self.environ.get(name)
            if sep:
                return value if value else default
            if value is None:
                self._issue(
                    path,
                    node,
                    f"environment variable `{name}` is not set",
                    f"set it, or give a default: ${{{name}:-value}}",
                )
                return ""
            return value

        return _SUBST_RE.sub(replace, text)


def load_yaml(text: str, file: str, environ: Mapping[str, str] | None = None) -> LoadedSource:
    """Parse `text` (the content of `file`) into plain data plus a source map and any issues."""
    builder = _Builder(file, os.environ if environ is None else environ)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        issue = ConfigIssue(
            path=(),
            message=f"invalid YAML: {exc.problem or exc.context}",
            hint="check indentation and quoting near this position",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        )
        return LoadedSource(None, builder.source_map, [issue])
    except yaml.YAMLError as exc:
        return LoadedSource(None, builder.source_map, [ConfigIssue(path=(), message=f"invalid YAML: {exc}", file=file)])
    if node is None:
        return LoadedSource({}, builder.source_map, [])
    data = builder.build(node, ())
    return LoadedSource(data, builder.source_map, builder.issues)
