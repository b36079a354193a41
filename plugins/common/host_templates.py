"""`{host}`-style templates in plugin options, resolved once from the node's host facts.

A template is a plain string in which `{name}` is replaced by the host fact
`name` (`ctx.host.as_dict()`: always `host`, plus whatever the runtime adds)
and `{{` / `}}` stand for literal braces. Nothing else is allowed between
braces: no attribute access, indexing or format specs, so a template can never
reach into Python objects. The brace syntax is that of record templates
(`common.record_templates.split_template`); only the names allowed differ.

Config models call `check_template` (syntax only: the facts are not known
while validating a file); plugins call `render_template` at construction, which
also rejects a placeholder naming a fact this node does not have.
"""

from __future__ import annotations

import re

from collector_plugins.common.record_templates import split_template

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _names(template: str, parts: list[tuple[str, str]]) -> list[str]:
    names: list[str] = []
    for kind, name in parts:
        if kind != "name":
            continue
        if not _NAME_RE.match(name):
            raise ValueError(
                f"invalid placeholder {{{name}}} in {template!r}: only host facts such as {{host}} may appear "
                "between braces (write literal braces as '{{' and '}}')"
            )
        names.append(name)
    return names


def template_fields(template: str) -> list[str]:
    """The placeholder names in `template`; raises ValueError on a malformed template."""
    return _names(template, split_template(template))


def check_template(template: str) -> str:
    """Validate the syntax of `template` (for pydantic validators); returns it unchanged."""
    template_fields(template)
    return template


def render_template(template: str, facts: dict[str, str]) -> str:
    """Substitute host facts into `template`; raises ValueError naming an unknown fact."""
    parts = split_template(template)
    unknown = sorted(set(_names(template, parts)) - facts.keys())
    if unknown:
        raise ValueError(
            f"template {template!r} uses unknown host fact(s) {', '.join(unknown)}; "
            f"known facts: {', '.join(sorted(facts)) or '(none)'}"
        )
    return "".join(str(facts[value]) if kind == "name" else value for kind, value in parts)
