"""Every secret-bearing field of every registered plugin, and configs that put a known value in each.

The fields are enumerated from the plugins' own models (`secret_field_paths`), so a plugin that
marks a new field secret is covered by every test built on these cases without editing them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from collector.config.secrets import secret_field_paths
from collector.registry import Registry, load_registry


@dataclass(frozen=True)
class SecretCase:
    section: str
    type_name: str
    path: tuple[str, ...]  # `*` for a list item
    index: int

    @property
    def component(self) -> str:
        return f"{self.type_name}_{self.index}"

    @property
    def value(self) -> str:
        """Digits only: YAML reads it as an int, the case that used to be echoed."""
        return str(7_340_000_000 + self.index * 7919)

    @property
    def variable(self) -> str:
        return f"COLLECTOR_TEST_SECRET_{self.index}"

    @property
    def key_path(self) -> str:
        """The issue's key path, `inputs.forward_0.users[0].password`."""
        out = f"{self.section}.{self.component}"
        for part in self.path:
            out += "[0]" if part == "*" else f".{part}"
        return out

    def __str__(self) -> str:
        return f"{self.section}.{self.type_name}.{'.'.join(self.path)}"


def secret_cases(registry: Registry | None = None) -> list[SecretCase]:
    registry = registry or load_registry()
    cases: list[SecretCase] = []
    for (section, type_name), plugin in sorted(registry.plugins.items()):
        for path in secret_field_paths(plugin.Config):
            cases.append(SecretCase(section, type_name, path, len(cases)))
    return cases


def _nest(path: tuple[str, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if head == "*":
        return [_nest(rest, value)]
    return {head: _nest(rest, value)}


def case_config(
    cases: list[SecretCase], substituted: bool, header: str = "", extra: dict[str, Any] | None = None
) -> str:
    """A config with one component per case, the case's value at its secret path.

    `substituted`: written as `${VARIABLE}` (set the variables with `case_environ`), else literally.
    `extra` goes into every component (e.g. an unknown option that makes each one invalid).
    """
    sections: dict[str, dict[str, Any]] = {}
    for case in cases:
        value: Any = f"${{{case.variable}}}" if substituted else int(case.value)
        body: dict[str, Any] = {"type": case.type_name}
        _merge(body, _nest(case.path, value))
        body.update(extra or {})
        sections.setdefault(case.section, {})[case.component] = body
    return header + yaml.safe_dump(sections, sort_keys=False)


def _merge(into: dict[str, Any], more: dict[str, Any]) -> None:
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def case_environ(cases: list[SecretCase]) -> dict[str, str]:
    return {case.variable: case.value for case in cases}


def leaked(cases: list[SecretCase], *texts: str) -> list[str]:
    """The cases whose value appears in any of `texts`."""
    return [str(case) for case in cases if any(case.value in text for text in texts)]
