"""Plugin discovery through the `node_collector.plugins` entry-point group.

Built-in plugins are registered by this distribution's own entry points, so a
third-party package adds a plugin exactly the way the built-ins do. A plugin
that fails to import is reported (by `collector validate` and at start-up)
instead of taking the process down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points

from collector.api import SECTIONS, Component
from collector.defaults import PLUGIN_ENTRY_POINT_GROUP


@dataclass
class Registry:
    plugins: dict[str, type[Component]] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # type name -> why it failed to load

    def add(self, cls: type[Component]) -> None:
        self.plugins[cls.type_name] = cls

    def get(self, type_name: str) -> type[Component] | None:
        return self.plugins.get(type_name)

    def section_of(self, cls: type[Component]) -> str:
        for section, base in SECTIONS.items():
            if issubclass(cls, base):
                return section
        raise TypeError(f"{cls!r} is not an input, processor or output")

    def in_section(self, section: str) -> dict[str, type[Component]]:
        base = SECTIONS[section]
        return {name: cls for name, cls in sorted(self.plugins.items()) if issubclass(cls, base)}


def load_registry(group: str = PLUGIN_ENTRY_POINT_GROUP) -> Registry:
    registry = Registry()
    for ep in entry_points(group=group):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not stop the others
            registry.broken[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        if not (isinstance(cls, type) and issubclass(cls, Component)):
            registry.broken[ep.name] = f"{ep.value} is not a collector plugin class"
            continue
        if getattr(cls, "type_name", None) != ep.name:
            registry.broken[ep.name] = f"entry point name {ep.name!r} differs from {cls.__name__}.type_name"
            continue
        registry.add(cls)
    return registry
