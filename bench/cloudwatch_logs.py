"""How fast the `cloudwatch_logs` output builds and encodes PutLogEvents requests, without any network.

    .venv/bin/python -m bench.cloudwatch_logs                  # 300,000 events of 200 bytes per mode
    .venv/bin/python -m bench.cloudwatch_logs --events 100000

Per mode, on one core: the driver's sizing of every event (`record_size`, the
API's count: UTF-8 bytes + 26) and its cut into requests of at most 10,000
events / 1 MiB; the output's `send`: routing to groups and streams, the
PutLogEvents rules (sort, span, split, byte and count cuts), the JSON body; and
the real aiobotocore client's handling of each call up to the wire (parameters,
botocore's serialisation, the output's request hook). A `before-call` handler
registered after the output's own then answers that all was accepted, so
signing and HTTP are left out: they cost the same per request whatever the
output does. No network: the endpoint is never contacted and credentials are
dummies. Prints events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from collector.events import LOGS, Batch
from collector.testing import component_context
from collector_plugins.outputs.cloudwatch_logs.limits import MAX_BATCH_BYTES, MAX_BATCH_EVENTS
from collector_plugins.outputs.cloudwatch_logs.output import CloudWatchLogsConfig, CloudWatchLogsOutput

MESSAGE_BYTES = 200
NOWHERE = "http://127.0.0.1:9"  # never contacted: every call ends in the before-call handler
MODES: dict[str, dict[str, Any]] = {
    "one stream, in order": {"log_group": "/bench/{host}", "log_stream": "{host}"},
    "stream per file ({file})": {"log_group": "/bench/{host}", "log_stream": "{file}"},
    "one stream, shuffled times": {"log_group": "/bench/{host}", "log_stream": "{host}", "shuffle": True},
}


class Accepted:
    """A `before-call` handler that ends each call after serialisation, as if the service accepted it."""

    class Http:
        status_code = 200
        headers: dict[str, str] = {}

    def __init__(self) -> None:
        self.body_bytes = 0

    def __call__(self, params: dict[str, Any], **_: Any) -> tuple[Any, dict[str, Any]]:
        self.body_bytes += len(params["body"])
        return self.Http(), {}


def events(n: int, shuffle: bool) -> list[dict[str, Any]]:
    prefix = "2026-11-26T10:00:00.000Z INFO [worker-3] GET /api/v1/items?page=3 200 0.012s request_id="
    records = []
    for i in range(n):
        text = f"{prefix}{i:012d} "
        records.append(
            {
                "timestamp": 1_795_000_000.0 + i / 1000,
                "message": text + "x" * (MESSAGE_BYTES - len(text)),
                "host": "node-1",
                "file": f"/var/log/app/{i % 4}.log",
            }
        )
    if shuffle:
        random.Random(1).shuffle(records)
    return records


def driver_requests(output: CloudWatchLogsOutput, records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """What the driver's batcher does for an output with exact sizes: size each record, cut at the limits."""
    sizes = [output.record_size(r) for r in records]
    requests: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    nbytes = 0
    for record, size in zip(records, sizes, strict=True):
        if current and (len(current) >= MAX_BATCH_EVENTS.value or nbytes + size > MAX_BATCH_BYTES.value):
            requests.append(current)
            current, nbytes = [], 0
        current.append(record)
        nbytes += size
    if current:
        requests.append(current)
    return requests


async def run_mode(name: str, options: dict[str, Any], n: int) -> tuple[float, int]:
    options = dict(options)
    shuffle = options.pop("shuffle", False)
    records = events(n, shuffle)
    config = CloudWatchLogsConfig.model_validate(
        {"type": "cloudwatch_logs", "inputs": ["app"], "region": "eu-west-1", "endpoint_url": NOWHERE, **options}
    )
    with tempfile.TemporaryDirectory() as tmp:
        ctx = component_context("bench", Path(tmp), host="node-1")
        output = CloudWatchLogsOutput(config, ctx)
        await output.start()
        try:
            client = await output._logs()
            accepted = Accepted()
            client.meta.events.register_last("before-call.cloudwatch-logs.PutLogEvents", accepted)
            start = time.perf_counter()
            for request in driver_requests(output, records):
                result = await output.send(Batch(LOGS, request))
                assert result.per_record is None and result.outcome.value == "ok", result
            elapsed = time.perf_counter() - start
            # The bodies that would have gone out carry every message (the output's body, not a placeholder).
            assert accepted.body_bytes > n * MESSAGE_BYTES, accepted.body_bytes
        finally:
            await output.stop()
    return n / elapsed, output.requests


def main() -> None:
    # Dummy credentials and no instance metadata: nothing may leave the machine.
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args()
    print(f"cloudwatch_logs: {args.events:,} events of {MESSAGE_BYTES} bytes per mode, one core")
    for name, options in MODES.items():
        rate, calls = asyncio.run(run_mode(name, options, args.events))
        print(f"  {name:<30} {rate:>12,.0f} events/s  ({calls} PutLogEvents calls)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
