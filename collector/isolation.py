"""Isolating the records a processor cannot handle, so that they never cost their neighbours.

Design note. `Processor.process(batch)` works on a whole batch. When it raises,
the runtime does not drop the batch: it calls `isolate`, which runs the
processor again on each record alone (a slow path, taken only after an
exception) and keeps every result that comes back. A record that still makes
the processor raise on its own is isolated by one rule:

- a **log record** (a dict, when the processor emits logs) is passed on as it
  is, with `processing_error` set to `<component>: <ExceptionType>: <message>`
  (unless an earlier processor already set it: the first failure is the cause);
  the runtime counts it in the component's `isolated_events`;
- a **metric or trace record** (or a log record whose processor turns logs into
  another kind) is dropped and counted in the loss ledger as `component_error`:
  a field added to a metric or to an X-Ray segment would make it invalid.

Records the processor handled before it raised are run through it again from
the state it left them in (a copy of every record before each call would cost
the hot path an allocation per record, to serve a path that only a bug takes).
Re-running loses nothing: a re-parsed field parses the same; a record whose
source field a parser already removed (`drop_field`) keeps its parsed fields and
is tagged as missing the source.

When every record of a batch of several fails alone too, the fault is the
component's rather than the records': the runtime then lets the supervisor
restart it (`Isolated.component_broken`).

The acknowledgement of the batch is unchanged: every part passed on carries
the batch's token, and the runtime releases its own reference only after the
parts are routed, so an input commits the position once the good records are
durable or delivered and the isolated ones passed on or counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.events import LOGS, Batch, Kind

ERROR_FIELD = "processing_error"
"""The field a log record gets when a processor raised on it alone."""
MAX_REASON_CHARS = 256
DROP_REASON = "component_error"
"""The loss-ledger reason of a metric or trace record a processor raised on."""


@dataclass(slots=True)
class Isolated:
    """What a failed batch became once its records were run one by one."""

    records: int = 0
    """Records in the batch that failed."""
    batches: list[Batch] = field(default_factory=list)
    """What to pass on, in record order: one batch per run of results of the same kind."""
    kept: int = 0
    """Failing log records passed on with `processing_error`."""
    dropped: int = 0
    """Failing metric and trace records (counted as `component_error`)."""
    error: str = ""
    """The first exception raised on a record alone ("Type: message"); empty when none did."""

    @property
    def failed(self) -> int:
        return self.kept + self.dropped

    @property
    def component_broken(self) -> bool:
        """Several records, and each made the processor raise alone: the fault is the component's, not theirs."""
        return self.records > 1 and self.failed == self.records


def describe(exc: BaseException) -> str:
    """The exception as "Type: message", cut short: an exception's text may quote a whole hostile record."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def isolate(
    process: Callable[[Batch], Batch | None],
    batch: Batch,
    component: str,
    emits: frozenset[str],
    error: BaseException,
) -> Isolated:
    """Run `process` on each record of `batch` alone; isolate the records it raises on (see the note).

    `error` is what the call on the whole batch raised: a batch of one record is
    not run again. Never raises an `Exception` from `process`.
    """
    records = batch.records
    out = Isolated(len(records))
    share = batch.nbytes // len(records) if records else 0
    keep = batch.kind == LOGS and LOGS in emits
    parts: list[Batch] = []  # in record order, one per run of results of the same kind

    def add(kind: Kind, items: list[Any], nbytes: int) -> None:
        if parts and parts[-1].kind == kind:
            parts[-1].records.extend(items)
            parts[-1].nbytes += nbytes
        else:
            parts.append(Batch(kind, list(items), nbytes, batch.ack))

    for record in records:
        if len(records) == 1:
            exc: BaseException = error
        else:
            try:
                result = process(batch.with_records([record], share))
            except Exception as raised:
                exc = raised
            else:
                if result is not None and result.records:
                    add(result.kind, result.records, result.nbytes)
                continue
        reason = describe(exc)
        if not out.error:
            out.error = reason
        if keep and type(record) is dict:
            record.setdefault(ERROR_FIELD, f"{component}: {reason}")
            add(LOGS, [record], share)
            out.kept += 1
        else:
            out.dropped += 1
    out.batches = parts
    return out
