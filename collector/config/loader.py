"""Load and validate a config file into a runnable `Config`.

Validation runs in three passes and reports every problem at once:
1. the YAML itself and the top-level settings;
2. each component against its plugin's own schema;
3. the topology (references, cycles, consumers, kinds).
Each problem names file:line:column, the key path, and a hint where one helps.
No problem shows the value of a secret field, nor a value that came from `${VAR}`
substitution (collector/config/secrets.py).
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from collector.api import SECTIONS
from collector.config.advice import config_warnings
from collector.config.errors import ConfigError, ConfigIssue, did_you_mean
from collector.config.messages import describe
from collector.config.model import RootConfig
from collector.config.secrets import is_secret_path, redact, secret_values
from collector.config.source import SourceMap, load_yaml
from collector.graph import ComponentSpec, Graph, effective_kinds, find_cycles, resolve_references
from collector.registry import Registry, load_registry

__all__ = ["Config", "load_config", "parse_config"]

SECTION_NAMES = ("inputs", "processors", "outputs")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_SINGULAR = {"inputs": "input", "processors": "processor", "outputs": "output"}
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Config:
    root: RootConfig
    graph: Graph
    file: str
    data_dir: Path
    warnings: tuple[ConfigIssue, ...] = ()
    """What `collector validate` and `run` warn about (config/advice.py): valid, but likely not meant."""

    def secret_values(self) -> set[str]:
        """The values of every component's secret options: never logged, never shown."""
        found: set[str] = set()
        for spec in self.graph.components.values():
            found |= secret_values(spec.plugin.Config, spec.config)
        return found


def load_config(path: str | Path, registry: Registry | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate `path`; raise `ConfigError` listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue((), f"cannot read config: {exc.strerror}", file=file)]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue((), "config is not valid UTF-8", file=file)]) from None
    return parse_config(text, file, registry, environ)


def load_config_lazily(path: str | Path, environ: Mapping[str, str] | None = None) -> tuple[Config, Registry]:
    """`load_config` importing only the plugins whose type names the file mentions (`collector run`
    stays light); the registry it used comes back with the config. Should the file not validate that
    way, it is validated again against every plugin, so the error (lists of the types available,
    did-you-mean) is exactly the one `collector validate` gives."""
    names: set[str] | None = None
    try:
        loaded = load_yaml(Path(path).read_text(encoding="utf-8"), str(path), environ)
        names = _type_names(loaded.data)
    except (OSError, UnicodeDecodeError):
        names = None
    if names is not None:
        registry = load_registry(only=names)
        try:
            return load_config(path, registry, environ), registry
        except ConfigError:
            pass
    registry = load_registry()
    return load_config(path, registry, environ), registry


def _type_names(data: Any) -> set[str] | None:
    """The `type` of every component in the three sections; None when the file is not shaped for that."""
    if not isinstance(data, dict):
        return None
    names: set[str] = set()
    for section in SECTIONS:
        components = data.get(section) or {}
        if not isinstance(components, dict):
            return None
        for body in components.values():
            if isinstance(body, dict) and isinstance(body.get("type"), str):
                names.add(body["type"])
    return names


def parse_config(
    text: str, file: str, registry: Registry | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    registry = registry if registry is not None else load_registry()
    loaded = load_yaml(text, file, environ)
    issues = list(loaded.issues)
    if loaded.data is None:
        raise ConfigError(issues)
    smap = loaded.source_map
    data = loaded.data
    if not isinstance(data, dict):
        raise ConfigError([*issues, _at(smap, (), "the config must be a mapping of settings")])

    root = _validate_root(data, smap, issues)
    secrets: set[str] = set()
    specs, raw_refs, sections = _validate_components(data, smap, registry, issues, secrets)
    graph = _validate_topology(specs, raw_refs, sections, smap, issues)
    if root is not None:
        issues.extend(_check_limits_and_budgets(root, specs, smap))
    if not graph.components and not issues:
        issues.append(_at(smap, (), "no components configured", "add at least one input and one output"))
    if issues or root is None:
        raise ConfigError(_without_secrets(issues, secrets, smap))

    data_dir = Path(root.data_dir)
    if not data_dir.is_absolute():
        data_dir = (Path(file).resolve().parent / data_dir).resolve()
    warnings = config_warnings(graph, lambda path, message, hint: _at(smap, path, message, hint))
    return Config(root=root, graph=graph, file=file, data_dir=data_dir, warnings=tuple(warnings))


def _without_secrets(issues: list[ConfigIssue], secrets: set[str], smap: SourceMap) -> list[ConfigIssue]:
    """Every issue with secret values, and substituted values near its key, taken out of its text.

    The last line of defence: messages built from a value (a validator's `{value!r}`, a limit
    check's number) lose it here even where the code that built them did not know it was secret.
    """
    out = []
    for issue in issues:
        hidden = secrets | smap.substitutions_near(issue.path)
        if not hidden:
            out.append(issue)
            continue
        hint = redact(issue.hint, hidden) if issue.hint is not None else None
        out.append(dataclasses.replace(issue, message=redact(issue.message, hidden), hint=hint))
    return out


def _validate_model(model: type[ModelT], body: dict[str, Any], base: tuple[str | int, ...], smap: SourceMap) -> ModelT:
    """`model.model_validate(body)`; where a string was expected but a `${VAR}` scalar was re-typed
    (a digits-only key became an int), validate again with the variable's exact text."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        fixes = {}
        for err in exc.errors():
            path = (*base, *err["loc"])
            if err["type"] == "string_type" and path in smap.retyped:
                fixes[tuple(err["loc"])] = smap.retyped[path]
        if not fixes:
            raise
    for loc, text in fixes.items():
        body = _replaced(body, loc, text)
    return model.model_validate(body)


def _replaced(data: Any, loc: tuple[Any, ...], value: Any) -> Any:
    """A copy of `data` with the value at `loc` replaced (the copies go only along `loc`)."""
    if not loc:
        return value
    head, rest = loc[0], loc[1:]
    if isinstance(data, dict) and head in data:
        return {**data, head: _replaced(data[head], rest, value)}
    if isinstance(data, list) and isinstance(head, int) and 0 <= head < len(data):
        return [*data[:head], _replaced(data[head], rest, value), *data[head + 1 :]]
    return data  # a union member tag in the location: the value is one level further


def _at(
    smap: SourceMap, path: tuple[str | int, ...], message: str, hint: str | None = None, value: bool = False
) -> ConfigIssue:
    line, column = smap.locate(path, value)
    return ConfigIssue(path, message, hint, smap.file, line, column)


def _validate_root(data: dict[str, Any], smap: SourceMap, issues: list[ConfigIssue]) -> RootConfig | None:
    settings = {k: v for k, v in data.items() if k not in SECTION_NAMES}
    for section in SECTION_NAMES:
        value = data.get(section)
        if value is not None and not isinstance(value, dict):
            issues.append(_at(smap, (section,), f"`{section}` must be a mapping of component names to settings"))
    try:
        return _validate_model(RootConfig, settings, (), smap)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, RootConfig, (), smap))
        return None


def _validate_components(
    data: dict[str, Any], smap: SourceMap, registry: Registry, issues: list[ConfigIssue], secrets: set[str]
) -> tuple[dict[str, tuple[str, Any, Any]], dict[str, list[Any]], dict[str, str]]:
    """Pass 2. Returns valid specs (name -> (section, plugin, config)), raw `inputs` lists, sections.

    Adds to `secrets` the text of every value written at a secret path of a component, and of
    every substitution that went into one.
    """
    specs: dict[str, tuple[str, Any, Any]] = {}
    raw_refs: dict[str, list[Any]] = {}
    sections: dict[str, str] = {}
    for section in SECTION_NAMES:
        components = data.get(section) or {}
        if not isinstance(components, dict):
            continue
        available = registry.in_section(section)
        for name, body in components.items():
            path: tuple[str | int, ...] = (section, name)
            if name in sections:
                issues.append(
                    _at(
                        smap,
                        path,
                        f"component name `{name}` is already used in `{sections[name]}`",
                        "names are unique across inputs, processors and outputs",
                    )
                )
                continue
            sections[name] = section
            if not _NAME_RE.match(name):
                issues.append(
                    _at(smap, path, f"invalid component name `{name}`", "use letters, digits, `_`, `-` and `.`")
                )
            if not isinstance(body, dict):
                issues.append(_at(smap, path, "a component must be a mapping with at least `type`"))
                continue
            if section != "inputs":
                refs = body.get("inputs")
                raw_refs[name] = refs if isinstance(refs, list) else []
            type_name = body.get("type")
            if not isinstance(type_name, str):
                issues.append(_at(smap, path, "missing `type`", f"one of: {', '.join(available) or 'none installed'}"))
                continue
            plugin = available.get(type_name)
            if plugin is None:
                issues.append(_unknown_type(smap, (*path, "type"), section, type_name, registry))

                continue
            secrets.update(secret_values(plugin.Config, body))
            for where, texts in smap.substituted_texts.items():
                if where[:2] == path and is_secret_path(plugin.Config, where[2:]):
                    secrets.update(texts)
            try:
                config = _validate_model(plugin.Config, body, path, smap)
            except ValidationError as exc:
                issues.extend(_pydantic_issues(exc, plugin.Config, path, smap))
                continue
            specs[name] = (section, plugin, config)
    return specs, raw_refs, sections


def _unknown_type(
    smap: SourceMap, path: tuple[str | int, ...], section: str, type_name: str, registry: Registry
) -> ConfigIssue:
    if type_name in registry.broken:
        return _at(smap, path, f"plugin `{type_name}` failed to load: {registry.broken[type_name]}", value=True)
    other = registry.get(type_name)
    if other is not None:
        where = registry.section_of(other)
        return _at(
            smap,
            path,
            f"`{type_name}` is an {_SINGULAR[where]}, not an {_SINGULAR[section]}",
            f"move it under `{where}`",
            value=True,
        )
    available = registry.in_section(section)
    hint = did_you_mean(type_name, available) or f"available: {', '.join(available) or 'none'}"
    return _at(smap, path, f"unknown {_SINGULAR[section]} type `{type_name}`", hint, value=True)


def _validate_topology(
    specs: dict[str, tuple[str, Any, Any]],
    raw_refs: dict[str, list[Any]],
    sections: dict[str, str],
    smap: SourceMap,
    issues: list[ConfigIssue],
) -> Graph:
    names_by_section: dict[str, list[str]] = {s: [] for s in SECTION_NAMES}
    for name, section in sections.items():
        names_by_section[section].append(name)
    upstreams, ref_issues, suggested, by_glob = resolve_references(
        names_by_section, raw_refs, lambda p: _at(smap, p, ""), sections
    )
    issues.extend(ref_issues)

    cyclic: set[str] = set()
    for cycle in find_cycles(upstreams):
        cyclic.update(cycle)
        issues.append(
            _at(
                smap,
                (sections[cycle[0]], cycle[0], "inputs"),
                "cycle: " + " -> ".join(reversed(cycle)),
                "a processor cannot consume its own output",
            )
        )

    consumed = {up for ups in upstreams.values() for up in ups}
    for name, section in sections.items():
        if section != "outputs" and name not in consumed and name not in suggested:
            issues.append(
                _at(
                    smap,
                    (section, name),
                    f"{_SINGULAR[section]} `{name}` has no consumer",
                    f"list `{name}` in the `inputs` of a processor or an output, or remove it",
                )
            )

    if cyclic:
        return Graph({})
    # Producers matched only by a glob are kept where their kinds fit; that
    # needs the kinds, which need the upstreams: settle them in topological
    # order (fine, since there is no cycle).
    valid_ups = {n: ups for n, ups in upstreams.items() if n in specs}
    accepts, emits = effective_kinds(specs, valid_ups)
    for name in list(valid_ups):
        globbed = by_glob.get(name, set())
        fitting = tuple(u for u in valid_ups[name] if u not in globbed or emits.get(u, frozenset()) & accepts[name])
        if fitting != valid_ups[name]:
            valid_ups[name] = upstreams[name] = fitting
            if not fitting:
                issues.append(
                    _at(
                        smap,
                        (sections[name], name, "inputs"),
                        f"no producer matched by `inputs` emits what `{name}` accepts ({_kinds(accepts[name])})",
                    )
                )
    accepts, emits = effective_kinds(specs, valid_ups)
    components: dict[str, ComponentSpec] = {}
    for name, (section, plugin, config) in specs.items():
        ups = upstreams.get(name, ())
        for up in ups:
            if up in specs and not (emits[up] & accepts[name]):
                raw = raw_refs.get(name, [])
                where: tuple[str | int, ...] = (section, name, "inputs")
                if up in raw:
                    where = (*where, raw.index(up))
                issues.append(
                    _at(
                        smap,
                        where,
                        f"`{up}` emits {_kinds(emits[up])} but `{name}` ({plugin.type_name}) "
                        f"accepts {_kinds(accepts[name])}",
                        "connect it to a component that takes that kind of data",
                        value=True,
                    )
                )
        components[name] = ComponentSpec(name, section, plugin, config, ups, accepts[name], emits[name])
    return Graph(components)


def _check_limits_and_budgets(
    root: RootConfig, specs: dict[str, tuple[str, Any, Any]], smap: SourceMap
) -> list[ConfigIssue]:
    """Batch settings may lower an output's declared API limits, never raise them; buffers fit the budgets."""
    issues: list[ConfigIssue] = []
    memory = disk = held = 0
    for name, (section, plugin, config) in specs.items():
        held += plugin.memory_bound(config)
        if section != "outputs":
            continue
        for key in ("max_events", "max_bytes"):
            limit = getattr(plugin.limits, key)
            value = getattr(config.batch, key)
            if limit is not None and value is not None and value > limit.value:
                issues.append(
                    _at(
                        smap,
                        ("outputs", name, "batch", key),
                        f"{value} is above the destination's limit of {limit.value}",
                        f"see {limit.source} (checked {limit.checked}); lower it or leave it unset",
                        value=True,
                    )
                )
        if config.buffer.type == "memory":
            memory += config.buffer.bytes_limit
        else:
            disk += config.buffer.bytes_limit
        disk += config.dead_letter.max_bytes
    budgets = root.budgets
    if budgets.memory is not None and memory + held > budgets.memory:
        what = "memory buffers" + (" and receivers' connections (max_in_flight_bytes)" if held else "")
        issues.append(
            _at(
                smap,
                ("budgets", "memory"),
                f"{what} may hold {memory + held} bytes in all, more than the budget of {budgets.memory}",
                "lower the outputs' buffer.max_bytes"
                + (" or inputs' max_in_flight_bytes" if held else "")
                + " or raise the budget",
                value=True,
            )
        )
    if budgets.disk is not None and disk > budgets.disk:
        issues.append(
            _at(
                smap,
                ("budgets", "disk"),
                f"disk buffers and dead letters may use {disk} bytes in all, more than the budget of {budgets.disk}",
                "lower the outputs' buffer.max_bytes / dead_letter.max_bytes or raise the budget",
                value=True,
            )
        )
    return issues


def _kinds(kinds: frozenset[str]) -> str:
    return " and ".join(sorted(kinds)) if kinds else "nothing"


def _pydantic_issues(
    exc: ValidationError, model: type[BaseModel], base: tuple[str | int, ...], smap: SourceMap
) -> list[ConfigIssue]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        kind = err["type"]
        path = (*base, *loc)
        hint = None
        # Never echo a secret or a substituted value: say where and what kind of problem instead.
        hidden = _why_hidden(model, loc, path, kind, smap)
        if kind == "extra_forbidden":
            key = str(loc[-1])
            known = _fields_at(model, loc[:-1])
            message = f"unknown option `{key}`"
            hint = did_you_mean(key, known) or (f"valid options: {', '.join(sorted(known))}" if known else None)
        elif kind == "missing":
            message = f"required option `{loc[-1]}` is missing"
            out.append(_at(smap, path[:-1], message, _field_help(model, loc)))
            continue
        else:
            message, hint = describe(err)  # our words and a hint, never pydantic's English
            if hidden is not None:
                hint = hidden
            elif hint is None:
                hint = _field_help(model, loc) if loc else None
            elif "input" in err and kind not in ("value_error",) and not isinstance(err["input"], dict | list):
                message += f" (got {err['input']!r})"
            out.append(_at(smap, path, message, hint, value=True))
            continue
        out.append(_at(smap, path, message, hint))
    return out


def _why_hidden(
    model: type[BaseModel], loc: tuple[Any, ...], path: tuple[str | int, ...], kind: str, smap: SourceMap
) -> str | None:
    """The hint to give instead of the value, when the value at `path` must not be shown."""
    expressions = smap.substituted.get(path)
    if expressions is not None:
        names = ", ".join(f"${{{e.partition(':-')[0]}}}" for e in expressions)
        return f"the value comes from {names} and is not shown; check what it holds"
    if is_secret_path(model, loc):
        hint = "the value is secret and is not shown"
        return hint + ("; quote it to keep it text" if kind == "string_type" else "; check what was written there")
    return None


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    current: Any = model
    for part in loc:
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        if isinstance(part, int) or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        current = _first_model(annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    target = _model_at(model, loc)
    return list(target.model_fields) if target is not None else []


def _field_help(model: type[BaseModel], loc: tuple[Any, ...]) -> str | None:
    target = _model_at(model, loc[:-1])
    if target is None or loc[-1] not in target.model_fields:
        return None
    info = target.model_fields[loc[-1]]
    if info.examples:
        return f"{info.description or ''} e.g. {loc[-1]}: {info.examples[0]!r}".strip()
    return info.description
