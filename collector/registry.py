"""Plugin discovery through the `node_collector.plugins` entry-point group.

Built-in plugins are registered by this distribution's own entry points, so a
third-party package adds a plugin exactly the way the built-ins do. A plugin
that fails to import is reported (by `collector validate` and at start-up)
instead of taking the process down.

Type names are unique per section, not overall: the `file` input tails files
and the `file` output writes them. An entry point is named after the type
(`generator`), or, where an input and an output share a type name, after the
section and the type (`inputs.file`, `outputs.file`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points

from collector.api import SECTIONS, Component
from collector.defaults import PLUGIN_ENTRY_POINT_GROUP


def section_of(cls: type[Component]) -> str:
    for section, base in SECTIONS.items():
        if issubclass(cls, base):
            return section
    raise TypeError(f"{cls!r} is not an input, processor or output")


def entry_point_type(name: str) -> str:
    """The type name an entry point registers: `inputs.file` -> `file`, `generator` -> `generator`."""
    section, dot, type_name = name.partition(".")
    return type_name if dot and section in SECTIONS else name


@dataclass
class Registry:
    plugins: dict[tuple[str, str], type[Component]] = field(default_factory=dict)
    """(section, type name) -> plugin class."""
    broken: dict[str, str] = field(default_factory=dict)  # type name -> why it failed to load

    def add(self, cls: type[Component]) -> None:
        self.plugins[(section_of(cls), cls.type_name)] = cls

    def get(self, type_name: str) -> type[Component] | None:
        """The plugin of that type in whichever section has it (the first, when several do)."""
        found = [cls for (_, name), cls in sorted(self.plugins.items()) if name == type_name]
        return found[0] if found else None

    def section_of(self, cls: type[Component]) -> str:
        return section_of(cls)

    def in_section(self, section: str) -> dict[str, type[Component]]:
        return {name: cls for (where, name), cls in sorted(self.plugins.items()) if where == section}


def load_registry(group: str = PLUGIN_ENTRY_POINT_GROUP) -> Registry:
    registry = Registry()
    for ep in entry_points(group=group):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not stop the others
            registry.broken[entry_point_type(ep.name)] = f"{type(exc).__name__}: {exc}"
            continue
        if not (isinstance(cls, type) and issubclass(cls, Component)):
            registry.broken[entry_point_type(ep.name)] = f"{ep.value} is not a collector plugin class"
            continue
        if getattr(cls, "type_name", None) != entry_point_type(ep.name):
            registry.broken[ep.name] = f"entry point name {ep.name!r} differs from {cls.__name__}.type_name"
            continue
        section, dot, _ = ep.name.partition(".")
        if dot and section in SECTIONS and section_of(cls) != section:
            registry.broken[ep.name] = f"entry point {ep.name!r} names the section {section}, but {ep.value} is not"
            continue
        registry.add(cls)
    return registry
