"""How fast the `firehose` and `kinesis` outputs build their requests, without any network.

    python -m bench.kinesis_firehose                  # 200,000 log events of ~220 bytes per mode
    python -m bench.kinesis_firehose --events 50000

For each mode, in 500-event requests as the driver cuts them: the driver's
sizing of every event (`record_size`), the output's `send` (encoding, packing
or partition keys, the request entries, reading the answer), and botocore's
serialisation of the call (JSON with base64 data), which the client stub does
before answering at once. Signing and HTTP are left out: they cost the same per
request whatever the output does. Prints events/s and MiB/s of event payload.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import botocore.session
from botocore.serialize import create_serializer

from collector.api import Output
from collector.events import LOGS, Batch
from collector.testing import component_context
from collector_plugins.outputs.firehose.output import FirehoseOutput
from collector_plugins.outputs.kinesis.output import KinesisOutput

REQUEST = 500
MODES: dict[str, tuple[type[Output], dict[str, Any]]] = {
    "firehose json": (FirehoseOutput, {}),
    "firehose json pack": (FirehoseOutput, {"pack": True}),
    "firehose raw": (FirehoseOutput, {"format": "raw"}),
    "kinesis json random keys": (KinesisOutput, {}),
    "kinesis json {host}/{file}": (KinesisOutput, {"partition_key": "{host}/{file}"}),
}


class SerializingClient:
    """Serialises each call the way botocore does before signing, then answers that all was accepted."""

    def __init__(self, service: str) -> None:
        model = botocore.session.get_session().get_service_model(service)
        self.serializer = create_serializer(model.metadata["protocol"])
        self.model = model

    async def client(self, service: str) -> SerializingClient:
        return self

    async def close(self) -> None:
        return None

    def _serialize(self, operation: str, params: dict[str, Any]) -> None:
        self.serializer.serialize_to_request(params, self.model.operation_model(operation))

    async def put_record_batch(self, **params: Any) -> dict[str, Any]:
        self._serialize("PutRecordBatch", params)
        return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "x"}] * len(params["Records"])}

    async def put_records(self, **params: Any) -> dict[str, Any]:
        self._serialize("PutRecords", params)
        return {"FailedRecordCount": 0, "Records": [{"SequenceNumber": "1", "ShardId": "s"}] * len(params["Records"])}


def events(n: int) -> list[dict[str, Any]]:
    text = "GET /api/v1/items?page=3 200 0.012s user-agent=Mozilla/5.0 (X11; Linux x86_64) request_id=" + "a" * 40
    return [
        {
            "timestamp": 1_764_000_000.0 + i / 1000,
            "message": f"{text} {i}",
            "host": "node-1",
            "file": "/var/log/app.log",
        }
        for i in range(n)
    ]


async def measure(name: str, cls: type[Output], options: dict[str, Any], records: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-") as data_dir:
        ctx = component_context("bench", Path(data_dir), host="node-1")
        body = {"type": cls.type_name, "inputs": ["x"], "region": "eu-west-1", **options}
        body["delivery_stream" if cls is FirehoseOutput else "stream"] = "bench"
        output = cls(cls.Config.model_validate(body), ctx)
        output.clients = SerializingClient("firehose" if cls is FirehoseOutput else "kinesis")  # type: ignore[attr-defined]
        payload = sum(len(r["message"]) for r in records)
        started = time.perf_counter()
        for start in range(0, len(records), REQUEST):
            chunk = records[start : start + REQUEST]
            sum(output.record_size(r) for r in chunk)  # the driver sizes every event once
            result = await output.send(Batch(LOGS, chunk))
            assert result is None or result.per_record is None, result
        elapsed = time.perf_counter() - started
    print(f"{name:30} {len(records) / elapsed:>12,.0f} events/s {payload / elapsed / 2**20:>8.1f} MiB/s")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    records = events(args.events)
    print(f"{args.events} events of ~{sum(len(r['message']) for r in records) // len(records)} byte messages")
    for name, (cls, options) in MODES.items():
        await measure(name, cls, options, records)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    asyncio.run(main())
