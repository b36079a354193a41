"""Fan-out isolation: which consumer gets its own copy (`Graph.copy_plan`), and the runtime applying it."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.api import HostFacts
from collector.config import parse_config
from collector.events import LOGS, METRICS
from collector.graph import Graph
from collector.registry import load_registry
from collector.runtime import Runtime
from collector.testing import Capture, CaptureOutput, wait_for
from tests.unit.fakes import Boom, Pass, Rebuild, Scribble, Tag, make_registry


def graph(text: str, capture: Capture | None = None) -> Graph:
    return parse_config(text, "c.yaml", make_registry(capture), environ={}).graph


def plan(text: str) -> dict[tuple[str, str], frozenset[str]]:
    return graph("inputs: {src: {type: counting}}\n" + text).copy_plan()


def test_the_mutating_branch_is_copied_when_an_output_shares_the_producer() -> None:
    # The shape: the old rule copied for every mutating consumer "but the last", i.e. here for none,
    # and `raw` held the very records `t` changed.
    assert plan("""
processors: {t: {type: tag, inputs: [src]}}
outputs: {parsed: {type: capture, inputs: [t]}, raw: {type: capture, inputs: [src]}}
""") == {("src", "t"): {LOGS}}


def test_every_mutating_branch_is_copied_the_last_one_too() -> None:
    assert plan("""
processors: {a: {type: tag, inputs: [src]}, b: {type: tag, inputs: [src]}}
outputs: {oa: {type: capture, inputs: [a]}, ob: {type: capture, inputs: [b]}}
""") == {("src", "a"): {LOGS}, ("src", "b"): {LOGS}}


def test_a_processor_that_forwards_to_one_mutating_consumer_is_a_mutating_branch() -> None:
    # `p` changes nothing itself, but hands the same records to `t`, which does, while `raw` holds them.
    assert plan("""
processors: {p: {type: pass, inputs: [src]}, q: {type: pass, inputs: [p]}, t: {type: tag, inputs: [q]}}
outputs: {parsed: {type: capture, inputs: [t]}, raw: {type: capture, inputs: [src]}}
""") == {("src", "p"): {LOGS}}  # only logs: `t` accepts nothing else, so other kinds stay shared


def test_a_forwarding_processor_with_several_consumers_copies_itself_and_is_not_copied_for() -> None:
    assert plan("""
processors: {p: {type: pass, inputs: [src]}, t: {type: tag, inputs: [p]}}
outputs:
  parsed: {type: capture, inputs: [t]}
  p_raw: {type: capture, inputs: [p]}
  raw: {type: capture, inputs: [src]}
""") == {("p", "t"): {LOGS}}


def test_what_happens_after_a_processor_that_builds_new_records_cannot_reach_its_input() -> None:
    assert (
        plan("""
processors: {n: {type: rebuild, inputs: [src]}, t: {type: tag, inputs: [n]}}
outputs: {parsed: {type: capture, inputs: [t]}, raw: {type: capture, inputs: [src]}}
""")
        == {}
    )


def test_an_output_that_modifies_records_is_copied_for_whatever_its_buffer() -> None:
    for buffer in ("memory", "disk"):
        assert plan(f"""
outputs:
  s: {{type: scribble, inputs: [src], buffer: {{type: {buffer}}}}}
  raw: {{type: capture, inputs: [src]}}
""") == {("src", "s"): {LOGS}}


def test_no_copy_where_no_branch_modifies_or_where_there_is_one_consumer() -> None:
    assert plan("""
processors: {p: {type: pass, inputs: [src]}, t: {type: tag, inputs: [p]}}
outputs: {a: {type: capture, inputs: [t]}, b: {type: capture, inputs: [src]}, c: {type: capture, inputs: [src]}}
""") == {("src", "p"): {LOGS}}
    assert (
        plan("""
processors: {p: {type: pass, inputs: [src]}}
outputs: {a: {type: capture, inputs: [p]}, b: {type: capture, inputs: [p]}, c: {type: capture, inputs: [src]}}
""")
        == {}
    )
    assert (
        plan("""
processors: {t: {type: tag, inputs: [src]}, u: {type: tag, inputs: [t]}}
outputs: {a: {type: capture, inputs: [u]}}
""")
        == {}
    )


def test_copies_are_per_kind() -> None:
    # Logs reach `b` and `t` (`m` takes metrics only), both copied; metrics reach `b`
    # and `m`, so `b` is copied; traces would reach `b` alone, which needs no copy.
    p = graph("""
inputs: {logs: {type: counting}, metrics: {type: metric_src}}
processors:
  both: {type: pass, inputs: [logs, metrics]}
  b: {type: boom, inputs: [both]}
  t: {type: tag, inputs: [both]}
outputs:
  m: {type: metrics_sink, inputs: [both]}
  ob: {type: capture, inputs: [b]}
  ot: {type: capture, inputs: [t]}
""").copy_plan()
    assert p == {("both", "b"): {LOGS, METRICS}, ("both", "t"): {LOGS}}


def test_the_test_plugins_declare_what_they_do() -> None:
    assert (Pass.mutates_records, Pass.forwards_records) == (False, True)
    assert (Rebuild.mutates_records, Rebuild.forwards_records) == (False, False)
    assert Tag.mutates_records and Boom.mutates_records and Scribble.mutates_records
    assert not CaptureOutput.mutates_records


# -- the runtime applying the plan ----------------------------------------------------------------------


@pytest.fixture
def capture() -> Capture:
    return Capture()


def captured_graph(capture: Capture, text: str) -> Graph:
    """A topology whose capture outputs report to `capture`."""
    return graph(text, capture)


async def test_raw_and_parsed_from_one_input_see_their_own_records(tmp_path: Path, capture: Capture) -> None:
    """The issue's shape with the real `add_fields`: `raw` (memory or disk buffer) never gets its field."""
    registry = load_registry()
    registry.add(capture.output)
    text = """
inputs: {src: {type: generator, count: 50, batch_size: 10, format: json}}
processors: {stamp: {type: add_fields, inputs: [src], fields: {parsed: "v"}}}
outputs:
  cwl: {type: capture, inputs: [stamp]}
  s3_memory: {type: capture, inputs: [src], delay: 0.05}
  s3_disk: {type: capture, inputs: [src], delay: 0.05, buffer: {type: disk}}
"""
    runtime = Runtime(tmp_path, HostFacts("h"))
    await runtime.apply(parse_config(text, "c.yaml", registry, environ={}).graph)
    names = ("cwl", "s3_memory", "s3_disk")
    await wait_for(lambda: all(len(capture(n)) == 50 for n in names))
    assert await runtime.shutdown(5)
    assert all(r["parsed"] == "v" for r in capture("cwl"))
    assert not any("parsed" in r for n in ("s3_memory", "s3_disk") for r in capture(n))


async def test_an_output_that_modifies_records_does_not_reach_its_siblings(tmp_path: Path, capture: Capture) -> None:
    runtime = Runtime(tmp_path, HostFacts("h"))
    await runtime.apply(
        captured_graph(
            capture,
            """
inputs: {src: {type: counting, batches: 3}}
outputs:
  s: {type: scribble, inputs: [src]}
  raw: {type: capture, inputs: [src], delay: 0.05}
""",
        )
    )
    await wait_for(lambda: len(capture("raw")) == len(capture("s")) == 30)
    assert await runtime.shutdown(5)
    assert not any("scribbled" in r for r in capture("raw"))


async def test_branches_that_only_read_share_the_same_record_objects(tmp_path: Path, capture: Capture) -> None:
    """The fast path: no copy where no branch modifies, whatever the buffers."""
    runtime = Runtime(tmp_path, HostFacts("h"))
    await runtime.apply(
        captured_graph(
            capture,
            """
inputs: {src: {type: counting, batches: 2}}
processors: {p: {type: pass, inputs: [src]}}
outputs:
  a: {type: capture, inputs: [p]}
  b: {type: capture, inputs: [src]}
  c: {type: capture, inputs: [src], buffer: {type: disk}}
""",
        )
    )
    await wait_for(lambda: all(len(capture(n)) == 20 for n in "abc"))
    assert await runtime.shutdown(5)
    a, b, c = (capture(n) for n in "abc")
    assert all(x is y for x, y in zip(a, b, strict=True))
    # The disk buffer hands out the very records it was given while delivery keeps up (its in-memory tail):
    # the reason a disk-buffered output is no more isolated than a memory-buffered one.
    assert any(x is y for x, y in zip(a, c, strict=True))
