"""A third-party plugin, installed only through its entry point (see the dist-info beside it).

`chaos` passes batches on and raises on every `every`-th one: the e2e tests use
it to show that a failing component is restarted and counted.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from collector.api import ALL_KINDS, Processor, ProcessorConfig
from collector.events import Batch


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
