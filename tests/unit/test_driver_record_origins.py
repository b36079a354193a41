"""Per-record names (`Batch.record_origins`) for outputs that write each record idempotently.

A record's name is its unit's origin and its index in the unit, whatever
request it travels in: a replay that groups units differently (other limits,
other timing, a restart) names every record as before, and a record resent
alone after a partial failure keeps its name.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from collector.buffer.memory import MemoryBuffer
from collector.events import Batch
from collector.output_limits import Limit, OutputLimits
from collector.send_result import Outcome, SendResult
from collector.testing import component_context
from tests.unit.test_driver_origin import Recording, config, messages, runner_for


class Named(Recording):
    record_origins: ClassVar[bool] = True

    def __init__(self, config: Any, ctx: Any) -> None:
        super().__init__(config, ctx)
        self.named: list[list[tuple[str, str]]] = []  # per send: (message, record origin)

    async def send(self, batch: Batch) -> SendResult | None:
        assert batch.record_origins is not None and len(batch.record_origins) == len(batch.records)
        self.named.append([(r["message"], o) for r, o in zip(batch.records, batch.record_origins, strict=True)])
        return await super().send(batch)


async def _deliver(tmp_path: Path, output_cls: type[Named], sizes: list[int], **body: Any) -> tuple[Named, list[str]]:
    buffer = MemoryBuffer(max_events=1000, max_bytes=10**6, when_full="block", on_drop=lambda r, n: None)
    runner, _, _ = runner_for(tmp_path, buffer)
    cfg = config(**body)
    output = output_cls(cfg, component_context("out", tmp_path))
    first = 0
    for n in sizes:
        await buffer.push(messages(first, n))
        first += n
    units = [await buffer.pop() for _ in sizes]
    buffer.rewind()
    buffer.close_intake()
    await runner.deliver(output, cfg, asyncio.Event())
    runner.dlq.close()
    return output, [u.origin for u in units if u is not None]


async def test_each_record_is_named_after_its_unit_and_index_however_requests_are_cut(tmp_path: Path) -> None:
    sizes = [3, 2, 6]
    expected: dict[str, str] = {}
    results = []
    for max_events in (4, 5, 2, 1000):
        output, origins = await _deliver(tmp_path, Named, sizes, batch={"max_events": max_events})
        first = 0
        expected = {}
        for origin, n in zip(origins, sizes, strict=True):
            for i in range(n):
                expected[f"m{first + i}"] = f"{origin}-{i}"
            first += n
        got = dict(pair for send in output.named for pair in send)
        assert got == expected
        results.append([len(s) for s in output.named])
    assert len({tuple(r) for r in results}) > 1  # the requests really were cut differently


async def test_a_record_resent_alone_keeps_its_name(tmp_path: Path) -> None:
    class Flaky(Named):
        pass

    buffer = MemoryBuffer(max_events=100, max_bytes=10**6, when_full="block", on_drop=lambda r, n: None)
    runner, _, stats = runner_for(tmp_path, buffer)
    output = Flaky(config(), component_context("out", tmp_path))
    outcomes = [Outcome.OK, Outcome.RETRY, Outcome.DROP, Outcome.RETRY]
    output.script = [SendResult.partial(outcomes, ["", "429", "400", "503"])]
    await buffer.push(messages(0, 4))
    buffer.close_intake()
    await runner.deliver(output, config(), asyncio.Event())
    runner.dlq.close()
    first, again = output.named
    assert again == [first[1], first[3]]
    assert stats.sent_events == 3


async def test_records_around_an_oversized_one_keep_their_indexes(tmp_path: Path) -> None:
    class Small(Named):
        limits = OutputLimits(max_record_bytes=Limit(5, "test", "2026-12-06"))

        def record_size(self, record: Any) -> int:
            return len(record["message"]) * (10 if record["message"] == "m1" else 1)

    output, (origin,) = await _deliver(tmp_path, Small, [3])
    assert [pair for send in output.named for pair in send] == [("m0", f"{origin}-0"), ("m2", f"{origin}-2")]


async def test_outputs_that_do_not_ask_get_no_names(tmp_path: Path) -> None:
    seen: list[Any] = []

    class Plain(Named):
        record_origins: ClassVar[bool] = False

        async def send(self, batch: Batch) -> SendResult | None:
            seen.append(batch.record_origins)
            return None

    await _deliver(tmp_path, Plain, [2])
    assert seen == [None]
