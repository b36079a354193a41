from __future__ import annotations

from pathlib import Path

import pytest

from collector.config import ConfigError, parse_config
from collector.config.schema import config_schema
from tests.unit.fakes import make_registry

VALID = """\
data_dir: ./state
inputs:
  app:
    type: counting
processors:
  tagged:
    type: tag
    inputs: [app]
outputs:
  out:
    type: capture
    inputs: [tagged]
"""


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", make_registry(), environ={})
    return [i.format() for i in info.value.issues]


def test_valid_config_builds_the_graph(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    config = parse_config(VALID, str(path), make_registry(), environ={})
    assert list(config.graph.order()) == ["app", "tagged", "out"]
    assert config.graph.components["out"].upstreams == ("tagged",)
    assert config.data_dir == (tmp_path / "state").resolve()


def test_three_mistakes_are_all_reported_with_lines_and_hints() -> None:
    text = """\
inputs:
  app:
    type: counting
    inclde: ["a"]
processors:
  tagged:
    type: tagg
    inputs: [app]
outputs:
  out:
    type: capture
    inputs: [tagd]
"""
    found = errors(text)
    assert len(found) == 3, found
    assert found[0] == "c.yaml:4:5: inputs.app.inclde: unknown option `inclde` (hint: did you mean `include`?)"
    assert found[1] == "c.yaml:7:11: processors.tagged.type: unknown processor type `tagg` (hint: did you mean `tag`?)"
    assert found[2] == "c.yaml:12:14: outputs.out.inputs[0]: unknown component `tagd` (hint: did you mean `tagged`?)"


def test_wrong_value_type_and_missing_option() -> None:
    found = errors("inputs:\n  app:\n    type: counting\n    batches: many\noutputs:\n  out:\n    type: capture\n")
    assert any(f.startswith("c.yaml:4:14: inputs.app.batches: must be a whole number") for f in found), found
    assert any(f.startswith("c.yaml:6:3: outputs.out: required option `inputs` is missing") for f in found), found


def test_cycle_is_rejected() -> None:
    text = """\
inputs:
  app: {type: counting}
processors:
  a: {type: tag, inputs: [app, b]}
  b: {type: tag, inputs: [a]}
outputs:
  out: {type: capture, inputs: [b]}
"""
    found = errors(text)
    assert any("cycle: " in f and "a" in f and "b" in f for f in found), found


def test_component_without_consumer_is_rejected() -> None:
    found = errors(
        "inputs:\n  app: {type: counting}\n  lonely: {type: counting}\n"
        "outputs:\n  out: {type: capture, inputs: [app]}\n"
    )
    assert found == [
        "c.yaml:3:3: inputs.lonely: input `lonely` has no consumer "
        "(hint: list `lonely` in the `inputs` of a processor or an output, or remove it)"
    ]


def test_kind_mismatch_is_rejected() -> None:
    found = errors("inputs:\n  app: {type: counting}\noutputs:\n  m: {type: metrics_sink, inputs: [app]}\n")
    assert len(found) == 1
    assert "`app` emits logs but `m` (metrics_sink) accepts metrics" in found[0]


def test_processor_kinds_follow_their_inputs() -> None:
    # `tag` accepts logs only: fed by a metrics input it emits nothing usable.
    found = errors(
        "inputs:\n  m: {type: metric_src}\nprocessors:\n  t: {type: tag, inputs: [m]}\n"
        "outputs:\n  out: {type: capture, inputs: [t]}\n"
    )
    assert any("`m` emits metrics but `t` (tag) accepts logs" in f for f in found), found


def test_globs_fan_in_and_fan_out() -> None:
    text = """\
inputs:
  app_a: {type: counting}
  app_b: {type: counting}
outputs:
  one: {type: capture, inputs: ["app_*"]}
  two: {type: capture, inputs: [app_a]}
"""
    config = parse_config(text, "c.yaml", make_registry(), environ={})
    assert config.graph.components["one"].upstreams == ("app_a", "app_b")
    assert [c.name for c in config.graph.consumers("app_a")] == ["one", "two"]


def test_glob_matching_nothing_and_output_reference() -> None:
    text = (
        "inputs:\n  app: {type: counting}\n"
        "outputs:\n  o1: {type: capture, inputs: [app, 'x*']}\n  o2: {type: capture, inputs: [o1]}\n"
    )
    found = errors(text)
    assert any("pattern `x*` matches no input or processor" in f for f in found), found
    assert any("`o1` is an output" in f for f in found), found


def test_type_in_wrong_section_and_duplicate_names() -> None:
    text = "inputs:\n  app: {type: capture}\noutputs:\n  app: {type: capture, inputs: [x]}\n"
    found = errors(text)
    assert any("`capture` is an output, not an input (hint: move it under `outputs`)" in f for f in found), found
    assert any("component name `app` is already used in `inputs`" in f for f in found), found


def test_human_sizes_and_durations_in_root_settings() -> None:
    config = parse_config(VALID + "shutdown_grace: 1m30s\n", "c.yaml", make_registry(), environ={})
    assert config.root.shutdown_grace == 90.0
    found = errors(VALID + "shutdown_grace: soon\n")
    assert any("shutdown_grace: invalid duration 'soon'" in f for f in found), found


def test_unknown_top_level_key_suggests() -> None:
    found = errors(VALID + "shutdown_grase: 5s\n")
    assert any("unknown option `shutdown_grase` (hint: did you mean `shutdown_grace`?)" in f for f in found), found


def test_empty_config_is_an_error() -> None:
    assert errors("") == ["c.yaml: (top level): no components configured (hint: add at least one input and one output)"]


def test_schema_covers_every_plugin_with_descriptions() -> None:
    schema = config_schema(make_registry())
    text = str(schema)
    for type_name in ("counting", "tag", "boom", "capture", "metrics_sink"):
        assert f"'const': '{type_name}'" in text
    assert schema["properties"]["shutdown_grace"]["description"]


def test_glob_skips_producers_of_other_kinds() -> None:
    text = """\
inputs:
  app: {type: counting}
  m: {type: metric_src}
outputs:
  logs_out: {type: capture, inputs: [app]}
  metrics_out: {type: metrics_sink, inputs: ["*"]}
"""
    config = parse_config(text, "c.yaml", make_registry(), environ={})
    assert config.graph.components["metrics_out"].upstreams == ("m",)


def test_buffer_settings_are_checked_per_type() -> None:
    found = errors(VALID.replace("type: capture", "type: capture\n    buffer: {type: memory, fsync: always}"))
    assert any("outputs.out.buffer: fsync applies to disk buffers only" in f for f in found), found
    found = errors(VALID.replace("type: capture", "type: capture\n    buffer: {type: disk, max_events: 5}"))
    assert any("max_events applies to memory buffers only" in f for f in found), found
    config = parse_config(
        VALID.replace("type: capture", "type: capture\n    buffer: {type: disk, max_bytes: 2GiB}"),
        "c.yaml",
        make_registry(),
        environ={},
    )
    assert config.graph.components["out"].config.buffer.bytes_limit == 2 * 2**30


def test_budgets_bound_the_sum_of_buffers() -> None:
    text = VALID.replace("type: capture", "type: capture\n    buffer: {type: memory, max_bytes: 300MiB}")
    found = errors(text + "budgets: {memory: 256MiB}\n")
    assert any(
        f.startswith("c.yaml:14:19: budgets.memory: memory buffers may hold 314572800 bytes in all") for f in found
    ), found
    found = errors(VALID + "budgets: {disk: 100MiB}\n")  # the dead-letter queue's default 1GiB counts
    assert any("budgets.disk: disk buffers and dead letters may use" in f for f in found), found
    parse_config(text + "budgets: {memory: 1GiB, disk: 2GiB}\n", "c.yaml", make_registry(), environ={})
