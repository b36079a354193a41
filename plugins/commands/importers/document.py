"""The translated config: components and their comments, written out as commented YAML.

Why not a YAML round-trip library: the output is built, not edited, so a
plain dump per component with comment lines above it is all it takes, and
every `# not translated: ...` note stays next to the component it concerns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

SECTIONS = ("inputs", "processors", "outputs")


class ImportFailed(Exception):
    """The source file cannot be read or is not a config of the agent named; the message says why."""


@dataclass
class Component:
    body: dict[str, Any]
    notes: list[str] = field(default_factory=list)


@dataclass
class Document:
    """What a translation produces: a header, top-level notes and components per section, in order."""

    source: str
    notes: list[str] = field(default_factory=list)
    sections: dict[str, dict[str, Component]] = field(default_factory=lambda: {name: {} for name in SECTIONS})

    def add(self, section: str, name: str, body: dict[str, Any], notes: list[str] | None = None) -> str:
        """Add a component under a name not yet used in any section (a suffix makes it unique); returns it."""
        taken = {key for components in self.sections.values() for key in components}
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name}_{n}", n + 1
        # The list is kept, not copied: a caller may add notes it learns after naming the component.
        self.sections[section][unique] = Component(body, notes if notes is not None else [])
        return unique

    def not_translated(self, what: str, why: str = "") -> None:
        """A top-level `# not translated: ...` note: nothing is ever dropped silently."""
        self.notes.append(_note(what, why))

    def render(self) -> str:
        lines = [f"# Translated by `collector import` from {self.source}.", "# Check with: collector validate -c FILE"]
        lines += [f"# {note}" for note in self.notes]
        for section in SECTIONS:
            components = self.sections[section]
            if not components:
                continue
            lines.append(f"{section}:")
            for name, component in components.items():
                lines += [f"  # {note}" for note in component.notes]
                dumped = yaml.safe_dump(
                    {name: component.body}, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120
                )
                lines += [f"  {line}" for line in dumped.splitlines()]
        return "\n".join(lines) + "\n"


def _note(what: str, why: str) -> str:
    text = f"not translated: {what}" + (f" ({why})" if why else "")
    # A note is one comment line: a newline in a source value must not end the comment.
    return " ".join(text.split())


def note(what: str, why: str = "") -> str:
    """The text of a component's `# not translated: ...` note."""
    return _note(what, why)


def literal(value: str) -> str:
    """A source string placed in our config: `$` is written `$$` so that no `${VAR}` is substituted."""
    return value.replace("$", "$$")
