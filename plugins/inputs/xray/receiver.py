"""The UDP side of the daemon: parse each datagram as it arrives, queue the records, count the rest.

`datagram_received` runs synchronously in the event loop for every datagram:
it parses and validates (`datagram.parse_datagram`) and appends the record to
a pending list. No task, future or await per datagram. The input's run loop
takes the whole list at once and emits it as batches.

The pending list is bounded in bytes (`max_pending_bytes`, counting also what
the run loop took and has not emitted yet, `held_bytes`): a sender cannot be
slowed over UDP, so while downstream is full and the bound is reached new
datagrams are dropped and counted (`queue_full`), never silently.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from collector_plugins.inputs.xray.datagram import MAX_DOCUMENT_BYTES, parse_datagram

QUEUE_FULL = "queue_full"
SAMPLE_BYTES = 200  # how much of a rejected datagram a log line shows


class SegmentReceiver(asyncio.DatagramProtocol):
    """Turns datagrams into pending trace records; `take()` hands them over."""

    def __init__(
        self,
        *,
        batch_size: int,
        max_pending_bytes: int,
        wake: Callable[[], None],
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        self.batch_size = batch_size
        self.max_pending_bytes = max_pending_bytes
        self.max_document_bytes = max_document_bytes
        self.wake = wake
        self.pending: list[dict[str, Any]] = []
        self.pending_bytes = 0
        self.held_bytes = 0
        """Bytes taken by the run loop and not emitted yet (still in memory, so still under the bound)."""
        self.datagrams = 0
        """Datagrams received so far (valid or not)."""
        self.rejected: dict[str, int] = {}
        """Datagrams dropped per reason since the last `take_rejected()`."""
        self.samples: dict[str, bytes] = {}
        """The start of the first datagram rejected for each reason since the last `take_rejected()`."""
        self.socket_errors = 0
        self.last_socket_error: str | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams += 1
        result = parse_datagram(data, time.time(), self.max_document_bytes)
        if type(result) is str:
            self._reject(result, data)
            return
        if self.pending_bytes + self.held_bytes >= self.max_pending_bytes:
            self._reject(QUEUE_FULL, data)
            return
        pending = self.pending
        pending.append(result)  # type: ignore[arg-type]
        self.pending_bytes += len(data)
        if len(pending) == self.batch_size:
            self.wake()

    def error_received(self, exc: Exception) -> None:
        # Receive errors on an unconnected UDP socket are rare (ICMP on some platforms); counted, reported by run.
        self.socket_errors += 1
        self.last_socket_error = f"{type(exc).__name__}: {exc}"

    def _reject(self, reason: str, data: bytes) -> None:
        rejected = self.rejected
        count = rejected.get(reason, 0)
        rejected[reason] = count + 1
        if not count:
            self.samples[reason] = data[:SAMPLE_BYTES]

    def take(self) -> tuple[list[dict[str, Any]], int]:
        """Every pending record and their total datagram bytes; the queue starts empty again."""
        records, self.pending = self.pending, []
        nbytes, self.pending_bytes = self.pending_bytes, 0
        return records, nbytes

    def take_rejected(self) -> tuple[dict[str, int], dict[str, bytes]]:
        """Rejections per reason (and a sample of each) since the last call."""
        rejected, self.rejected = self.rejected, {}
        samples, self.samples = self.samples, {}
        return rejected, samples
