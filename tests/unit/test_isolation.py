"""A processor's exception costs only the records it raises on (collector/isolation.py and the runtime's loop).

The processors here fail the way real ones do: on a record's content (`fragile`),
always (`broken`), or on metrics they cannot handle. The input acknowledges
through a real `AckTracker`, so the tests see what the input would commit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
from pydantic import Field

from collector.acks import AckTracker
from collector.api import ALL_KINDS, HostFacts, Input, InputConfig, InputContext, Processor, ProcessorConfig
from collector.config import parse_config
from collector.events import LOGS, METRICS, TRACES, Batch, Metric
from collector.graph import Graph
from collector.isolation import ERROR_FIELD, MAX_REASON_CHARS, isolate
from collector.runtime import Runtime
from collector.testing import Capture, wait_for
from collector_plugins.inputs.file.input import FileInput
from tests.unit.fakes import make_registry


class AckedInputConfig(InputConfig):
    type: Literal["acked"] = Field(description="Plugin type.", examples=["acked"])
    batches: int = Field(3, description="Batches to emit.", examples=[3])
    bad: list[int] = Field(default_factory=list, description="Sequence numbers of hostile records.", examples=[[2]])
    kind: Literal["logs", "metrics"] = Field("logs", description="What to emit.", examples=["logs"])


class AckedInput(Input):
    """10 records per batch, each batch with a token whose position is its last sequence number."""

    type_name = "acked"
    description = "Test input that commits positions."
    Config = AckedInputConfig
    emits: ClassVar[frozenset[str]] = frozenset({LOGS, METRICS})
    committed: ClassVar[list[int]] = []

    async def run(self, ctx: InputContext) -> None:
        tracker = AckTracker(AckedInput.committed.append)
        for b in range(self.config.batches):
            seqs = range(b * 10, b * 10 + 10)
            records: list[Any]
            if self.config.kind == METRICS:
                records = [Metric("m", "gauge", float("nan") if s in self.config.bad else s) for s in seqs]
            else:
                records = [{"message": "bad" if s in self.config.bad else "ok", "seq": s} for s in seqs]
            await ctx.emit(Batch(self.config.kind, records, nbytes=100, ack=tracker.token(seqs[-1])))


class FragileConfig(ProcessorConfig):
    type: Literal["fragile"] = Field(description="Plugin type.", examples=["fragile"])
    always: bool = Field(False, description="Raise on every record.", examples=[False])
    batch_faults: int = Field(
        0, description="Raise on this many multi-record batches, whatever they hold.", examples=[1]
    )


class Fragile(Processor):
    """Raises on hostile records (message `bad`, or a NaN metric) as an unguarded parser would."""

    type_name = "fragile"
    description = "Fails on hostile records."
    Config = FragileConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS
    emits: ClassVar[frozenset[str]] = ALL_KINDS

    faults = 0

    def process(self, batch: Batch) -> Batch | None:
        if len(batch.records) > 1 and Fragile.faults < self.config.batch_faults:
            Fragile.faults += 1
            raise RuntimeError("transient")
        for record in batch.records:
            if self.config.always:
                raise RuntimeError("always")
            if isinstance(record, Metric):
                int(record.value)  # ValueError on NaN
            elif record["message"] == "bad":
                raise ValueError("invalid \\U escape: " + "x" * 1000)
            else:
                record["parsed"] = True
        return batch


def graph(capture: Capture, text: str) -> Graph:
    registry = make_registry(capture)
    registry.add(AckedInput)
    registry.add(Fragile)
    return parse_config(text, "c.yaml", registry, environ={}).graph


@pytest.fixture(autouse=True)
def _reset() -> None:
    AckedInput.committed.clear()
    Fragile.faults = 0


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    return Runtime(tmp_path, HostFacts("h"))


@pytest.fixture
def capture() -> Capture:
    return Capture()


async def test_hostile_records_are_tagged_and_their_neighbours_pass(runtime: Runtime, capture: Capture) -> None:
    await runtime.apply(
        graph(
            capture,
            """
inputs: {src: {type: acked, batches: 3, bad: [2, 15, 16, 29]}}
processors: {p: {type: fragile, inputs: [src]}}
outputs: {out: {type: capture, inputs: [p]}}
""",
        )
    )
    await wait_for(lambda: len(capture("out")) == 30 and AckedInput.committed[-1:] == [29])
    out = capture("out")
    assert [r["seq"] for r in out] == list(range(30)), "every record, in order"
    good = [r for r in out if r["message"] == "ok"]
    bad = [r for r in out if r["message"] == "bad"]
    assert all(r["parsed"] and ERROR_FIELD not in r for r in good)
    assert [r["seq"] for r in bad] == [2, 15, 16, 29]
    assert all(r[ERROR_FIELD].startswith("p: ValueError: invalid \\U escape") for r in bad)
    assert all(len(r[ERROR_FIELD]) <= MAX_REASON_CHARS + 3 for r in bad), "a hostile message is not copied whole"
    st = runtime.stats["p"]
    assert st.isolated_events == 4 and st.errors == 3 and st.restarts == 0
    assert not st.dropped, "nothing lost"
    assert (st.received_events, st.sent_events) == (30, 30)
    assert st.last_error is not None and st.last_error.startswith("ValueError")
    assert await runtime.shutdown(5)
    assert AckedInput.committed == [9, 19, 29]


async def test_failing_metrics_are_dropped_counted_and_acknowledged(runtime: Runtime, capture: Capture) -> None:
    await runtime.apply(
        graph(
            capture,
            """
inputs: {src: {type: acked, batches: 2, kind: metrics, bad: [3, 4, 12]}}
processors: {p: {type: fragile, inputs: [src]}}
outputs: {out: {type: capture, inputs: [p]}}
""",
        )
    )
    # The position is committed only once the good metrics are delivered and the bad ones counted.
    await wait_for(lambda: AckedInput.committed[-1:] == [19])
    assert sorted(m.value for m in capture("out")) == [s for s in range(20) if s not in (3, 4, 12)]
    st = runtime.stats["p"]
    assert st.dropped["component_error"] == 3 and st.isolated_events == 0 and st.restarts == 0
    assert await runtime.shutdown(5)


async def test_a_batch_fault_that_no_record_repeats_costs_nothing(runtime: Runtime, capture: Capture) -> None:
    await runtime.apply(
        graph(
            capture,
            """
inputs: {src: {type: acked, batches: 3}}
processors: {p: {type: fragile, inputs: [src], batch_faults: 2}}
outputs: {out: {type: capture, inputs: [p]}}
""",
        )
    )
    await wait_for(lambda: len(capture("out")) == 30 and AckedInput.committed[-1:] == [29])
    assert all(r["parsed"] and ERROR_FIELD not in r for r in capture("out"))
    st = runtime.stats["p"]
    assert (st.errors, st.isolated_events, st.restarts, st.last_error) == (2, 0, 0, "RuntimeError: transient")
    assert await runtime.shutdown(5)


async def test_a_processor_failing_on_every_record_keeps_them_and_is_restarted(
    runtime: Runtime, capture: Capture
) -> None:
    await runtime.apply(
        graph(
            capture,
            """
inputs: {src: {type: acked, batches: 2}}
processors: {p: {type: fragile, inputs: [src], always: true}}
outputs: {out: {type: capture, inputs: [p]}}
""",
        )
    )
    st = runtime.stats["p"]
    await wait_for(lambda: len(capture("out")) == 20 and st.restarts >= 1, timeout=10)
    assert all(r[ERROR_FIELD] == "p: RuntimeError: always" for r in capture("out"))
    assert st.last_error == "RuntimeError: always" and st.isolated_events == 20
    await wait_for(lambda: AckedInput.committed[-1:] == [19])
    await runtime.shutdown(5)


def test_isolate_keeps_order_kinds_and_the_ack() -> None:
    tracker_commits: list[int] = []
    token = AckTracker(tracker_commits.append).token(7)
    batch = Batch(TRACES, [{"id": i} for i in range(4)], nbytes=40, ack=token)

    def process(b: Batch) -> Batch | None:
        if any(r["id"] == 2 for r in b.records):
            raise KeyError("name")
        if b.records[0]["id"] == 0:
            return None  # filtered out
        return Batch(LOGS, [{"message": str(r["id"])} for r in b.records], 5, b.ack)

    out = isolate(process, batch, "p", frozenset({LOGS}), KeyError("name"))
    # Trace records are never tagged: the failing one is dropped (and the runtime counts it).
    assert (out.kept, out.dropped, out.error, out.component_broken) == (0, 1, "KeyError: 'name'", False)
    assert [(b.kind, [r["message"] for r in b.records], b.nbytes) for b in out.batches] == [(LOGS, ["1", "3"], 10)]
    assert all(b.ack is token for b in out.batches)
    assert not tracker_commits, "isolating releases nothing: the runtime does, after routing"


def test_a_one_record_batch_is_not_run_again() -> None:
    calls: list[int] = []

    def process(b: Batch) -> Batch | None:
        calls.append(1)
        raise ValueError("x")

    out = isolate(process, Batch(LOGS, [{"message": "m"}]), "p", frozenset({LOGS}), ValueError("x"))
    assert not calls and out.kept == 1 and not out.component_broken
    assert out.batches[0].records == [{"message": "m", ERROR_FIELD: "p: ValueError: x"}]


async def test_file_input_commits_past_a_failing_line_only_once_every_line_is_through(
    runtime: Runtime, tmp_path: Path, capture: Capture
) -> None:
    # The case: 10,000 lines, a few of which made a parser raise. The batch used to be dropped as
    # component_error and the file position committed anyway: 10,000 lines lost. Now every line arrives
    # and the committed offset is the end of the file.
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = [f"n={i} level=info" if i % 1000 != 7 else "bad" for i in range(10_000)]
    data = ("\n".join(lines) + "\n").encode()
    (logs / "app.log").write_bytes(data)
    registry = make_registry(capture)
    registry.add(FileInput)
    registry.add(Fragile)
    config = f"""
inputs: {{files: {{type: file, include: ["{logs}/*.log"], read_from: beginning}}}}
processors: {{p: {{type: fragile, inputs: [files]}}}}
outputs: {{out: {{type: capture, inputs: [p]}}}}
"""
    runtime.data_dir = tmp_path / "data"
    await runtime.apply(parse_config(config, "c.yaml", registry, environ={}).graph)
    await wait_for(lambda: len(capture("out")) == 10_000, timeout=15)
    out = capture("out")
    assert [r["message"] for r in out] == lines
    assert [r.get(ERROR_FIELD) is not None for r in out] == [line == "bad" for line in lines]
    assert runtime.stats["p"].isolated_events == 10 and not runtime.stats["p"].dropped
    assert await runtime.shutdown(5)
    checkpoint = json.loads((tmp_path / "data" / "components" / "files" / "files.json").read_text())
    assert [e["offset"] for e in checkpoint["files"]] == [len(data)]
