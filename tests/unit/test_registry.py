"""Plugin discovery: type names are unique per section, and entry points may name the section."""

from __future__ import annotations

from typing import ClassVar, Literal

from collector.api import Input, InputConfig, Output, OutputConfig
from collector.registry import Registry, entry_point_type, load_registry


class _In(Input):
    type_name: ClassVar[str] = "same"

    class Config(InputConfig):
        type: Literal["same"]


class _Out(Output):
    type_name: ClassVar[str] = "same"

    class Config(OutputConfig):
        type: Literal["same"]


def test_an_input_and_an_output_may_share_a_type_name() -> None:
    registry = Registry()
    registry.add(_In)
    registry.add(_Out)
    assert registry.in_section("inputs") == {"same": _In}
    assert registry.in_section("outputs") == {"same": _Out}
    assert registry.in_section("processors") == {}


def test_entry_point_names_may_be_qualified_by_section() -> None:
    assert entry_point_type("outputs.file") == "file"
    assert entry_point_type("generator") == "generator"
    assert entry_point_type("acme.thing") == "acme.thing"  # not a section: the whole name is the type


def test_the_built_in_file_output_is_registered_under_its_section() -> None:
    registry = load_registry()
    assert registry.in_section("outputs")["file"].__name__ == "FileOutput"
    assert "file" not in registry.broken
