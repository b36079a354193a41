"""`{host}`-style templates in plugin options, resolved once from the node's host facts.

A template is a plain string in which `{name}` is replaced by the host fact
`name` (`ctx.host.as_dict()`: always `host`, plus whatever the runtime adds)
and `{{` / `}}` stand for literal braces. Nothing else is allowed between
braces: no attribute access, indexing or format specs, so a template can never
reach into Python objects.

Config models call `check_template` (syntax only: the facts are not known
while validating a file); plugins call `render_template` at construction, which
also rejects a placeholder naming a fact this node does not have.
"""

from __future__ import annotations

import re
import string

_FORMATTER = string.Formatter()
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def template_fields(template: str) -> list[str]:
    """The placeholder names in `template`; raises ValueError on a malformed template."""
    names: list[str] = []
    try:
        parsed = list(_FORMATTER.parse(template))
    except ValueError as exc:
        raise ValueError(f"invalid template {template!r}: {exc} (write literal braces as '{{{{' and '}}}}')") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not _NAME_RE.match(name) or spec or conversion:
            raise ValueError(
                f"invalid placeholder {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                f"in {template!r}: only host facts such as {{host}} may appear between braces "
                "(write literal braces as '{{' and '}}')"
            )
        names.append(name)
    return names


def check_template(template: str) -> str:
    """Validate the syntax of `template` (for pydantic validators); returns it unchanged."""
    template_fields(template)
    return template


def render_template(template: str, facts: dict[str, str]) -> str:
    """Substitute host facts into `template`; raises ValueError naming an unknown fact."""
    names = template_fields(template)
    if not names:
        # Still collapse `{{` / `}}` into single braces.
        return template.replace("{{", "{").replace("}}", "}")
    unknown = sorted(set(names) - facts.keys())
    if unknown:
        raise ValueError(
            f"template {template!r} uses unknown host fact(s) {', '.join(unknown)}; "
            f"known facts: {', '.join(sorted(facts)) or '(none)'}"
        )
    return template.format_map(facts)
