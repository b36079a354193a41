from __future__ import annotations

from pathlib import Path

from collector.acks import AckTracker
from collector.api import HostFacts
from collector.config import parse_config
from collector.events import LOGS, Batch
from collector.runtime import Runtime
from collector.testing import Capture, wait_for
from tests.unit.fakes import make_registry


def test_commits_the_longest_completed_prefix_in_order() -> None:
    committed: list[int] = []
    tracker = AckTracker(committed.append)
    a, b, c = tracker.token(1), tracker.token(2), tracker.token(3)
    b.release()
    assert committed == []  # 1 is still pending
    a.retain()  # two holders of batch 1
    a.release()
    assert committed == []
    a.release()
    assert committed == [2]  # 1 and 2 done together
    c.release()
    assert committed == [2, 3] and tracker.outstanding == 0


async def test_acknowledged_only_after_every_output_delivered(tmp_path: Path) -> None:
    capture = Capture()
    graph = parse_config(
        """
inputs: {src: {type: counting, batches: null, interval: 0.01}}
processors: {t: {type: tag, inputs: [src]}}
outputs:
  fast: {type: capture, inputs: [t]}
  slow: {type: capture, inputs: [src], delay: 0.2}
""",
        "c.yaml",
        make_registry(capture),
        environ={},
    ).graph
    runtime = Runtime(tmp_path, HostFacts("h"))
    committed: list[int] = []
    tracker = AckTracker(committed.append)

    # Feed one tracked batch straight into the input's router, as an input's emit does.
    await runtime.apply(graph)
    token = tracker.token(100)
    await runtime.routers["src"].send(Batch(LOGS, [{"message": "tracked"}], ack=token))
    token.release()  # the input's own reference
    await wait_for(lambda: any(r.get("message") == "tracked" for r in capture("fast")))
    assert committed == []  # `slow` has not delivered yet
    await wait_for(lambda: committed == [100], timeout=5)
    assert any(r.get("message") == "tracked" for r in capture("slow"))
    await runtime.shutdown(5)
