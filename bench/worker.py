"""Runs one scenario in this process and prints one JSON line of figures.

Started by `bench/__main__.py` in a fresh process pinned to one CPU, so that peak
RSS is this scenario's alone. The clock starts when the topology is applied and
stops once every input has finished and everything downstream has drained.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
import sys
import time

import uvloop

from collector.api import HostFacts
from collector.config import load_config
from collector.runtime import Runtime


async def measure(config_path: str) -> dict[str, float]:
    config = load_config(config_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(config.data_dir, HostFacts(socket.gethostname()))
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await runtime.apply(config.graph)
    await runtime.inputs_finished.wait()
    drained = await runtime.shutdown(600)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    sinks = [s for s in runtime.stats.values() if s.section == "outputs"]
    return {
        "events": sum(s.received_events for s in sinks),
        "bytes": sum(s.received_bytes for s in sinks),
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "drained": drained,
    }


def main() -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(measure(sys.argv[1]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
