"""Plugin discovery through the `node_collector.plugins` entry-point group.

Built-in plugins are registered by this distribution's own entry points, so a
third-party package adds a plugin exactly the way the built-ins do. A plugin
that fails to import is reported (by `collector validate` and at start-up)
instead of taking the process down.

Type names are unique per section, not overall: the `file` input tails files
and the `file` output writes them. An entry point is named after the type
(`generator`), or, where an input and an output share a type name, after the
section and the type (`inputs.file`, `outputs.file`).

Two distributions registering the same section and type name is an error,
not a choice: which one would win depends on the order of `sys.path`. Neither
is used; the type is reported as broken with both distributions named, so a
config that uses it fails validation with that message and the others run.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from collector.api import SECTIONS, Component
from collector.commands import origin_of  # the same wording for plugins and commands
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


class DuplicatePluginError(ValueError):
    """A second plugin for a section and type name that already has one."""


@dataclass
class Registry:
    plugins: dict[tuple[str, str], type[Component]] = field(default_factory=dict)
    """(section, type name) -> plugin class."""
    broken: dict[str, str] = field(default_factory=dict)  # type name -> why it failed to load
    origins: dict[tuple[str, str], str] = field(default_factory=dict)
    """(section, type name) -> where the plugin came from (see `origin_of`)."""

    def add(self, cls: type[Component], origin: str = "") -> None:
        """Register `cls`; raises `DuplicatePluginError` if another class has its section and type name."""
        key = (section_of(cls), cls.type_name)
        known = self.plugins.get(key)
        if known is not None and known is not cls:
            first = self.origins.get(key) or f"{known.__module__}:{known.__qualname__}"
            second = origin or f"{cls.__module__}:{cls.__qualname__}"
            raise DuplicatePluginError(
                f"the {key[0][:-1]} type `{key[1]}` is registered twice, by {first} and by {second}; "
                "uninstall one of them"
            )
        self.plugins[key] = cls
        self.origins[key] = origin or self.origins.get(key, "")

    def get(self, type_name: str) -> type[Component] | None:
        """The plugin of that type in whichever section has it (the first, when several do)."""
        found = [cls for (_, name), cls in sorted(self.plugins.items()) if name == type_name]
        return found[0] if found else None

    def section_of(self, cls: type[Component]) -> str:
        return section_of(cls)

    def in_section(self, section: str) -> dict[str, type[Component]]:
        return {name: cls for (where, name), cls in sorted(self.plugins.items()) if where == section}


def load_registry(group: str = PLUGIN_ENTRY_POINT_GROUP, only: Collection[str] | None = None) -> Registry:
    """Every plugin of `group`; with `only`, just the entry points registering those type names (in any
    section), so that `collector run` imports the plugins its config names and no others. A type name
    two distributions register is still found broken, as both are loaded."""
    registry = Registry()
    conflicts: dict[tuple[str, str], list[str]] = {}  # (section, type) -> every conflicting registration
    for ep in entry_points(group=group):
        if only is not None and entry_point_type(ep.name) not in only:
            continue
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
        origin = origin_of(ep)
        try:
            registry.add(cls, origin)
        except DuplicatePluginError:
            key = (section_of(cls), cls.type_name)
            conflicts.setdefault(key, [registry.origins[key]]).append(origin)
    for (where, type_name), origins in conflicts.items():
        del registry.plugins[(where, type_name)]
        del registry.origins[(where, type_name)]
        registry.broken[type_name] = (
            f"the {where[:-1]} type `{type_name}` is registered by more than one distribution: "
            f"{' and '.join(origins)}; uninstall all but one"
        )
    return registry
