"""Third-party plugins, installed only through their entry points (see the dist-info beside it).

`chaos` passes batches on and raises on every `every`-th one: the e2e tests use
it to show that a failing component is restarted and counted. `gate` is a
destination that a test can take down and bring back (an outage).
`collector chaos-count` is a third-party CLI command (collector/commands.py).
"""

from __future__ import annotations

import argparse
import os
from typing import ClassVar, Literal

import orjson
from pydantic import Field

from collector.api import ALL_KINDS, Output, OutputConfig, Processor, ProcessorConfig
from collector.events import Batch
from collector.send_result import Outcome, RetryableError, SendResult


class ChaosConfig(ProcessorConfig):
    type: Literal["chaos"] = Field(description="Plugin type.", examples=["chaos"])
    every: int = Field(5, ge=1, description="Raise on every n-th batch.", examples=[5])


class Chaos(Processor):
    type_name = "chaos"
    description = "Raises on every n-th batch (for testing supervision)."
    Config = ChaosConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS
    mutates_records = False
    batches = 0  # across restarts: the supervisor builds a new instance each time

    def process(self, batch: Batch) -> Batch | None:
        Chaos.batches += 1
        if Chaos.batches % self.config.every == 0:
            raise RuntimeError(f"chaos on batch {Chaos.batches}")
        return batch


class GateConfig(OutputConfig):
    type: Literal["gate"] = Field(description="Plugin type.", examples=["gate"])
    path: str = Field(description="JSON lines file the delivered records are appended to.", examples=["out.jsonl"])
    closed_while: str = Field(
        description="While this file exists, every send fails with a retryable error (an outage).",
        examples=["/tmp/outage"],
    )
    reject_every: int | None = Field(
        None, ge=1, description="Reject for good the records whose `sequence` is a multiple of this.", examples=[7]
    )


class Gate(Output):
    """A destination that can be taken down: refuses while a marker file exists, else appends to a file."""

    type_name = "gate"
    description = "Appends records to a file; refuses while a marker file exists (for outage tests)."
    Config = GateConfig
    accepts: ClassVar[frozenset[str]] = ALL_KINDS

    async def send(self, batch: Batch) -> SendResult | None:
        if os.path.exists(self.config.closed_while):
            raise RetryableError("destination unavailable")
        every = self.config.reject_every
        outcomes = [Outcome.DROP if every and r.get("sequence", 1) % every == 0 else Outcome.OK for r in batch.records]
        accepted = [r for r, o in zip(batch.records, outcomes, strict=True) if o is Outcome.OK]
        data = b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in accepted)
        with open(self.config.path, "ab+") as f:
            if f.seek(0, os.SEEK_END) and os.pread(f.fileno(), 1, f.tell() - 1) != b"\n":
                data = b"\n" + data  # a write cut short by a kill -9: as the `file` output, start a new line
            f.write(data)
        if len(accepted) == len(outcomes):
            return None
        reasons = ["" if o is Outcome.OK else "ValidationException: sequence rejected" for o in outcomes]
        return SendResult.partial(outcomes, reasons)


class ChaosCount:
    """`collector chaos-count -c CONFIG`: how many `chaos` processors a config has, and how often they raise."""

    name = "chaos-count"
    help = "count the chaos processors of a config"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from collector.commands import add_config_argument

        add_config_argument(parser)
        parser.add_argument("--format", choices=["text", "json"], default="text")

    def run(self, args: argparse.Namespace) -> int:
        from collector.commands import load_config

        config = load_config(args.config)
        found = {n: s.config.every for n, s in config.graph.components.items() if s.type_name == "chaos"}
        if args.format == "json":
            print(orjson.dumps({"chaos": found}).decode())
        else:
            print(f"{len(found)} chaos processor(s)")
        return 0 if found else 1
