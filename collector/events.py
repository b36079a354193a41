"""Records and batches: what moves between components.

Data crosses every boundary as a `Batch`, never as single records, so the cost
of a channel hop, a metrics update or an `await` is paid once per batch.

Record shapes, one per signal kind:

- **logs**: a plain `dict`. `message` holds the raw line (`bytes` or `str`;
  raw bytes stay bytes until a processor needs fields), `timestamp` is float
  epoch seconds, any other key is a field. A dict is the cheapest mutable map
  in CPython, orjson and msgpack serialise it natively, and processors read
  and set fields without a wrapper.
- **metrics**: a `Metric` (`__slots__`, no validation on construction).
- **traces**: a `dict` holding one trace document (an X-Ray segment or
  subsegment: `trace_id`, `id`, `name`, `start_time`, ...). Inputs that must
  forward documents byte for byte keep the original under `raw` (`bytes`).

Contract for processors: a processor may add, replace or delete top-level keys
of the records it receives (a Metric's attributes and tags), but must not
mutate nested containers in place (replace them instead). Fan-out relies on
this: a branch that may modify records gets `Batch.copy()`, a new list of new
record dicts and Metrics whose nested values are still shared (see
`Graph.copy_plan` in collector/graph.py for who gets a copy). Copying nested
values too would cost several times as much per record on every copied
branch, for no built-in processor's sake.
"""

from __future__ import annotations

from typing import Any, Final, Literal

LOGS: Final = "logs"
METRICS: Final = "metrics"
TRACES: Final = "traces"
KINDS: Final = (LOGS, METRICS, TRACES)

Kind = Literal["logs", "metrics", "traces"]

MetricType = Literal["counter", "gauge", "distribution", "set"]


class Metric:
    """One metric data point.

    `value` is a float for counters and gauges, a list of floats (or a
    `{"values": [...], "counts": [...]}` mapping) for distributions and a list
    of members for sets. `tags` maps dimension names to string values.
    `interval` is the length in seconds of the period an aggregated point
    covers (a counter's sum over 10 s has 10.0; outputs derive high resolution
    from it); 0.0 for a point that is not an aggregate.
    `source` is None, or what the source itself exposed for this point, for an
    output that re-exposes the source's own format (the `prometheus` input sets
    `{"format": "prometheus", "type": ..., "value": <cumulative>, ...}` so that
    `prometheus_exporter` passes names, label values, types and cumulative values
    through). Aggregation drops it: an aggregate is no longer what the source said.
    """

    __slots__ = ("interval", "name", "source", "tags", "timestamp", "type", "unit", "value")

    def __init__(
        self,
        name: str,
        type: MetricType,
        value: Any,
        tags: dict[str, str] | None = None,
        timestamp: float = 0.0,
        unit: str | None = None,
        interval: float = 0.0,
        source: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.value = value
        self.tags = tags if tags is not None else {}
        self.timestamp = timestamp
        self.unit = unit
        self.interval = interval
        self.source = source

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "value": self.value,
            "tags": self.tags,
            "timestamp": self.timestamp,
        }
        if self.unit is not None:
            out["unit"] = self.unit
        if self.interval:
            out["interval"] = self.interval
        if self.source is not None:
            out["source"] = self.source
        return out

    def copy(self) -> Metric:
        return Metric(
            self.name, self.type, self.value, dict(self.tags), self.timestamp, self.unit, self.interval, self.source
        )

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, {self.type!r}, {self.value!r}, tags={self.tags!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Metric):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable


class Batch:
    """A list of records of one kind, with its approximate payload size.

    `nbytes` is set by the producer (it usually knows the sizes it read) and is
    what the bytes counters report: the payload's size in bytes (UTF-8 for text),
    an estimate, not a serialised size.
    `ack` is reserved for the acknowledgement token that lets an input commit
    its source position once the batch is durable downstream.
    `origin` is set by the output driver on the batches it hands to `Output.send`:
    a stable identity of the batch's first record in the output's buffer, the
    same when the batch is sent again after a retry, a rewind or a restart (see
    `buffer.base.Unit.origin`); None when there is none (records resent alone).
    Outputs that can write idempotently (S3 object keys) derive names from it.
    `record_origins` is set by the driver, for outputs that declare
    `Output.record_origins`, to one stable name per record (`"{unit origin}-{index
    in the unit}"`): the same on every resend of that record, alone or in any
    request, so per-record idempotent writes (OpenSearch `_id`) can use it.
    """

    __slots__ = ("ack", "kind", "nbytes", "origin", "record_origins", "records")

    def __init__(self, kind: Kind, records: list[Any], nbytes: int = 0, ack: Any = None) -> None:
        self.kind = kind
        self.records = records
        self.nbytes = nbytes
        self.ack = ack
        self.origin: str | None = None
        self.record_origins: list[str] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"Batch({self.kind}, {len(self.records)} records, {self.nbytes} bytes)"

    def with_records(self, records: list[Any], nbytes: int | None = None) -> Batch:
        """A batch of the same kind carrying `records` (and the same ack)."""
        return Batch(self.kind, records, self.nbytes if nbytes is None else nbytes, self.ack)

    def copy(self) -> Batch:
        """A copy whose list and records can be modified without affecting this batch.

        Every record is a new object (a dict copy, or a new Metric with its own `tags`); nested values
        (a parsed object under a key, a distribution's values) are shared, per the contract above.
        """
        if self.kind == METRICS:
            records = [m.copy() for m in self.records]
        else:
            records = [r.copy() for r in self.records]
        return Batch(self.kind, records, self.nbytes, self.ack)
