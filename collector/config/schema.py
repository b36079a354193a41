"""The JSON Schema of the whole config file, built from every installed plugin's model.

Editors use it for completion and inline errors, e.g. with the YAML language
server: `# yaml-language-server: $schema=./collector.schema.json`.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, create_model

from collector.config.model import RootConfig
from collector.registry import Registry

SECTION_NAMES = ("inputs", "processors", "outputs")


def config_schema(registry: Registry) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for section in SECTION_NAMES:
        models = [cls.Config for cls in registry.in_section(section).values()]
        description = RootConfig.model_fields[section].description
        if not models:
            fields[section] = (dict[str, Any], Field(default_factory=dict, description=description))
            continue
        union: Any = models[0] if len(models) == 1 else Union[tuple(models)]  # noqa: UP007
        component = Annotated[union, Field(discriminator="type")]
        fields[section] = (dict[str, component], Field(default_factory=dict, description=description))  # type: ignore[valid-type]
    model = create_model("CollectorConfig", __base__=RootConfig, **fields)
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "node-collector configuration"
    return schema
