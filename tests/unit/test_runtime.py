from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from collector.api import HostFacts
from collector.config import parse_config
from collector.graph import Graph
from collector.runtime import Runtime
from collector.testing import Capture, wait_for
from tests.unit.fakes import Boom, make_registry

GraphOf = Callable[[str], Graph]


@pytest.fixture
def capture() -> Capture:
    return Capture()


@pytest.fixture
def graph(capture: Capture) -> GraphOf:
    """A topology whose capture outputs report to this test's `capture`."""
    return lambda text: parse_config(text, "c.yaml", make_registry(capture), environ={}).graph


@pytest.fixture(autouse=True)
def _reset_boom() -> None:
    Boom.seen = 0


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return Runtime(tmp_path, HostFacts("h"))


async def test_data_flows_and_is_counted(runtime: Runtime, graph: GraphOf, capture: Capture) -> None:
    await runtime.apply(
        graph("""
inputs: {src: {type: counting, batches: 3, batch_size: 10}}
processors: {t: {type: tag, inputs: [src], value: v}}
outputs: {out: {type: capture, inputs: [t]}}
""")
    )
    await wait_for(lambda: len(capture("out")) == 30)
    assert [r["seq"] for r in capture("out")] == list(range(30))
    assert all(r["tag"] == "v" for r in capture("out"))
    await wait_for(lambda: runtime.inputs_finished.is_set())
    assert await runtime.shutdown(5)
    st = runtime.stats
    assert (st["src"].sent_events, st["t"].received_events, st["t"].sent_events) == (30, 30, 30)
    assert (st["out"].received_events, st["out"].sent_events, st["out"].received_bytes) == (30, 30, 60)


async def test_fan_out_gives_each_mutating_branch_its_own_records(
    runtime: Runtime, graph: GraphOf, capture: Capture
) -> None:
    await runtime.apply(
        graph("""
inputs: {src: {type: counting, batches: 2}}
processors:
  a: {type: tag, inputs: [src], value: a}
  b: {type: tag, inputs: [src], value: b}
outputs:
  oa: {type: capture, inputs: [a]}
  ob: {type: capture, inputs: [b]}
  raw: {type: capture, inputs: [src]}
""")
    )
    await wait_for(lambda: len(capture("oa")) == len(capture("ob")) == len(capture("raw")) == 20)
    assert {r["tag"] for r in capture("oa")} == {"a"}
    assert {r["tag"] for r in capture("ob")} == {"b"}
    assert not any("tag" in r for r in capture("raw"))  # the shared branch sees neither
    await runtime.shutdown(5)


async def test_fan_in_merges_both_sources(runtime: Runtime, graph: GraphOf, capture: Capture) -> None:
    await runtime.apply(
        graph("""
inputs:
  one: {type: counting, batches: 2}
  two: {type: counting, batches: 3}
outputs: {out: {type: capture, inputs: ["*"]}}
""")
    )
    await wait_for(lambda: len(capture("out")) == 50)
    await runtime.shutdown(5)


async def test_routing_passes_only_accepted_kinds(runtime: Runtime, graph: GraphOf, capture: Capture) -> None:
    await runtime.apply(
        graph("""
inputs:
  logs: {type: counting, batches: 1}
  metrics: {type: metric_src}
processors:
  both: {type: boom, inputs: [logs, metrics], every: 1000}
outputs:
  m: {type: metrics_sink, inputs: [both]}
  all: {type: capture, inputs: [both]}
""")
    )
    # `both` passes logs and metrics on; `m` accepts only metrics and gets only them.
    await wait_for(lambda: len(capture("all")) == 11 and runtime.stats["m"].received_events == 1)
    await runtime.shutdown(5)
    assert runtime.stats["m"].received_events == 1


async def test_failing_component_is_restarted_and_counted(runtime: Runtime, graph: GraphOf, capture: Capture) -> None:
    await runtime.apply(
        graph("""
inputs: {src: {type: counting, batches: 2, batch_size: 5}}
processors: {b: {type: boom, inputs: [src], every: 1}}
outputs: {out: {type: capture, inputs: [b]}}
""")
    )
    # Every call raises, on each record alone too: the component is broken, not a record. The records are
    # passed on tagged (collector/isolation.py), the error counted and the component restarted.
    await wait_for(lambda: runtime.stats["b"].errors == 2 and len(capture("out")) == 10, timeout=10)
    st = runtime.stats["b"]
    assert all(r["processing_error"] == "b: RuntimeError: boom" for r in capture("out"))
    assert not st.dropped and st.isolated_events == 10
    await wait_for(lambda: st.restarts == 2, timeout=10)
    assert st.last_error == "RuntimeError: boom"
    await runtime.shutdown(5)


async def test_reload_keeps_unchanged_components_and_starts_new_ones(
    runtime: Runtime, graph: GraphOf, capture: Capture
) -> None:
    first = """
inputs:
  src: {type: counting, batches: null, interval: 0.01}
outputs:
  out: {type: capture, inputs: [src]}
"""
    await runtime.apply(graph(first))
    await wait_for(lambda: len(capture("out")) >= 20)
    src_instance = runtime.instance("src")
    src_stats = runtime.stats["src"]
    sent_before = src_stats.sent_events

    changes = await runtime.apply(graph(first + "  extra: {type: capture, inputs: [src]}\n"))
    assert changes == {"added": ["extra"], "changed": [], "removed": [], "kept": ["src", "out"]}
    assert runtime.instance("src") is src_instance
    assert runtime.stats["src"] is src_stats and src_stats.sent_events >= sent_before
    await wait_for(lambda: len(capture("extra")) >= 20)

    changes = await runtime.apply(graph(first.replace("0.01", "0.02")))
    assert changes["changed"] == ["src"] and changes["removed"] == ["extra"]
    assert runtime.instance("src") is not src_instance
    assert "extra" not in runtime.stats
    await runtime.shutdown(5)
    # Nothing lost across the reloads: `out` got every record the inputs emitted.
    assert len(capture("out")) == runtime.stats["out"].received_events
    assert runtime.stats["out"].received_events == sent_before_total(runtime)


def sent_before_total(runtime: Runtime) -> int:
    return runtime.stats["src"].sent_events


async def test_shutdown_drains_queued_data_within_grace(runtime: Runtime, graph: GraphOf, capture: Capture) -> None:
    await runtime.apply(
        graph("""
inputs: {src: {type: counting, batches: 5}}
outputs: {slow: {type: capture, inputs: [src], delay: 0.05}}
""")
    )
    await wait_for(lambda: runtime.stats["src"].sent_events == 50)
    assert await runtime.shutdown(5)
    assert len(capture("slow")) == 50


async def test_shutdown_deadline_cancels_and_counts_what_is_left(
    runtime: Runtime, graph: GraphOf, capture: Capture
) -> None:
    await runtime.apply(
        graph("""
inputs: {src: {type: counting, batches: 5}}
outputs: {slow: {type: capture, inputs: [src], delay: 1.0}}
""")
    )
    await wait_for(lambda: runtime.stats["src"].sent_events == 50)
    assert not await runtime.shutdown(0.2)
    # The request in hand was cut off and the buffer's rest too: none of it is lost silently.
    dropped = runtime.stats["slow"].dropped["shutdown_timeout"]
    assert dropped == 50 - len(capture("slow")) and dropped >= 40


async def test_backpressure_bounds_what_an_input_gets_ahead(tmp_path: Path, graph: GraphOf, capture: Capture) -> None:
    runtime = Runtime(tmp_path, HostFacts("h"), channel_events=20)
    await runtime.apply(
        graph("""
inputs: {src: {type: counting, batches: null, batch_size: 10}}
outputs: {slow: {type: capture, inputs: [src], delay: 0.05, buffer: {max_events: 30}}}
""")
    )
    await wait_for(lambda: runtime.stats["src"].sent_events >= 50)  # the channel and the buffer are full by now
    await asyncio.sleep(0.3)  # not a wait: the input goes on trying, and must get no further ahead meanwhile
    sent = runtime.stats["src"].sent_events
    done = len(capture("slow"))
    # At most the channel's 20 events, the buffer's 30 (the request in hand included), one batch
    # waiting to enter the buffer and one blocked in send.
    assert sent - done <= 70, (sent, done)
    await runtime.shutdown(5)


async def test_inputs_that_cannot_wait_count_what_a_full_channel_refuses(
    tmp_path: Path, graph: GraphOf, capture: Capture
) -> None:
    runtime = Runtime(tmp_path, HostFacts("h"), channel_events=30)
    await runtime.apply(
        graph("""
inputs: {udp: {type: burst, batches: 10}}
outputs: {out: {type: capture, inputs: [udp], delay: 0.01}}
""")
    )
    await wait_for(lambda: runtime.inputs_finished.is_set())
    assert await runtime.shutdown(5)
    dropped = runtime.stats["udp"].dropped["channel_full"]
    assert dropped >= 60  # the channel holds 30 events, the burst was 100
    assert len(capture("out")) + dropped == 100


async def test_reload_with_new_buffer_settings_keeps_the_intake_flowing(
    runtime: Runtime, graph: GraphOf, capture: Capture
) -> None:
    base = """
inputs:
  src: {type: counting, batches: 30, batch_size: 10, interval: 0.005}
outputs:
  out: {type: capture, inputs: [src], delay: 0.02, buffer: {max_events: 20}}
"""
    await runtime.apply(graph(base))
    await wait_for(lambda: len(capture("out")) >= 20)
    await runtime.apply(graph(base.replace("max_events: 20", "max_events: 1000")))
    await wait_for(lambda: runtime.inputs_finished.is_set(), timeout=10)
    assert await runtime.shutdown(10)
    st = runtime.stats["out"]
    # What the replaced buffer still held is counted; everything else arrives through the new one.
    assert len(capture("out")) + st.dropped.get("shutdown_timeout", 0) >= 300
    assert st.received_events == 300 and runtime.outputs["out"].intake_task.done()


async def test_outputs_started_while_another_opens_its_disk_buffer_do_not_fail(
    runtime: Runtime, graph: GraphOf, capture: Capture
) -> None:
    # Outputs start before `apply` switches to the new graph; one that ran while a later one opened its
    # disk buffer used to look itself up in the old graph, fail, and wait out a restart backoff.
    await runtime.apply(
        graph("""
inputs: {src: {type: counting, batches: 1}}
outputs:
  b: {type: capture, inputs: [src], buffer: {type: disk}}
  a: {type: capture, inputs: [src]}
""")
    )
    await wait_for(lambda: len(capture("a")) == len(capture("b")) == 10)
    assert await runtime.shutdown(5)
    assert {name: st.errors for name, st in runtime.stats.items()} == {"src": 0, "a": 0, "b": 0}
