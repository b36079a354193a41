"""The `_bulk` request body and the reading of its answer, for OpenSearch and Elasticsearch.

Body (NDJSON): per record an action line and the document, each ending with a
newline, the last one included (both servers reject a body without the final
newline; some look-alikes accept it, so our own tests check it):

    {"create":{"_index":"logs-2026.12.06","_id":"4f1c0a2b9e77-0190a1b2c3d-0-1f40-3"}}
    {"@timestamp":"2026-12-06T18:30:00.123Z","message":"...","host":"..."}

- `_index` is the index template rendered for the record (field values lower
  cased, forbidden characters replaced), computed once per distinct name.
- `_id` (`document_id: stable`) is a prefix naming this host and output plus
  the record's origin in the output's buffer (`Batch.record_origins`): the same
  for the same record however often it is sent, never the same for another.
- The document is the record as JSON (`bytes` as UTF-8 text, a Metric as its
  dict), with `@timestamp` spliced in front when the record has no such key
  (the record's time, or the current time when it has none).

Answer: `errors: false` means every item was accepted. Otherwise one item per
action, in order: 2xx OK; 409 on `create` with our own `_id` means the document
is already there from an earlier send (OK, not a second copy); 429 RETRY
(throttled); 5xx RETRY; any other status DROP with the error's type and reason
(a mapping error, an invalid index name), to dead letters.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from collector.events import METRICS, TRACES, Metric
from collector.send_result import Outcome
from collector_plugins.common.record_encoding import encode_json, json_default
from collector_plugins.common.record_templates import RecordTemplate
from collector_plugins.common.search_bulk.settings import SearchSettings, expand_date_placeholders

_FORBIDDEN = str.maketrans({c: "_" for c in ' \\/*?"<>|,#:'})


def index_value(value: str) -> str:
    """A field value made safe inside an index name: lower case, no characters index names forbid."""
    return value.lower().translate(_FORBIDDEN)


def id_prefix(host: str, output: str) -> str:
    """12 hex digits naming this host and output, so that ids of different collectors never meet."""
    return hashlib.blake2b(f"{host}\0{output}".encode(), digest_size=6).hexdigest() + "-"


class _Timestamps:
    """ISO 8601 UTC with milliseconds; the second's text is cached (records of a batch share seconds)."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def format(self, ts: float) -> bytes:
        second = int(ts)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._text}.{int((ts - second) * 1000):03d}Z".encode()


def record_time(kind: str, record: Any) -> float | None:
    if kind == METRICS and isinstance(record, Metric):
        return record.timestamp or None
    if isinstance(record, dict):
        value = record.get("start_time") if kind == TRACES else record.get("timestamp")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


class BulkEncoder:
    """Turns records into `_bulk` lines (one `bytes` per record: action line + document line)."""

    def __init__(self, settings: SearchSettings, host: dict[str, str], output_name: str) -> None:
        self.settings = settings
        self.template = RecordTemplate(
            expand_date_placeholders(settings.index), host, missing="unknown", escape=index_value
        )
        self.op = settings.op
        self.prefix = id_prefix(host.get("host", ""), output_name)
        self.stable_ids = settings.document_id == "stable"
        self._ts_key = orjson.dumps(settings.timestamp_field) if settings.timestamp_field else None
        self._ts_name = settings.timestamp_field
        self._times = _Timestamps()
        self._actions: dict[str, tuple[bytes, bytes]] = {}  # index -> (action head with id, without id)

    def _action(self, index: str) -> tuple[bytes, bytes]:
        known = self._actions.get(index)
        if known is None:
            name = orjson.dumps(index)
            head = b'{"' + self.op.encode() + b'":{"_index":' + name
            known = (head + b',"_id":"', head + b"}}\n")
            if len(self._actions) > 10_000:
                self._actions.clear()
            self._actions[index] = known
        return known

    def document(self, kind: str, record: Any) -> bytes:
        try:
            doc = orjson.dumps(record, default=json_default)
        except (orjson.JSONEncodeError, TypeError):
            doc = encode_json([record])[:-1]  # the shared lenient path: str() for odd values, never raises
        if self._ts_key is not None and doc[:1] == b"{":
            has = isinstance(record, dict) and self._ts_name in record
            if not has:
                ts = record_time(kind, record) or time.time()  # as index names do: now when it has no time
                field = b"{" + self._ts_key + b':"' + self._times.format(ts) + b'"'
                doc = field + b"}" if doc == b"{}" else field + b"," + doc[1:]
        return doc

    def lines(self, kind: str, records: Sequence[Any], origins: Sequence[str] | None) -> list[bytes]:
        """One `action\\ndocument\\n` per record, in order."""
        template = self.template
        static = template.static
        index = template.render({}) if static else ""
        ids = origins if self.stable_ids else None
        prefix = self.prefix.encode()
        out: list[bytes] = []
        append = out.append
        document = self.document
        for i, record in enumerate(records):
            if not static:
                index = template.render(record if isinstance(record, dict) else _as_fields(record))
            with_id, without_id = self._action(index)
            if ids is not None:
                append(with_id + prefix + ids[i].encode() + b'"}}\n' + document(kind, record) + b"\n")
            else:
                append(without_id + document(kind, record) + b"\n")
        return out


def _as_fields(record: Any) -> dict[str, Any]:
    if isinstance(record, Metric):
        return {"name": record.name, "timestamp": record.timestamp, **record.tags}
    return {}


def read_items(body: bytes, count: int, op: str, own_ids: bool) -> tuple[list[Outcome], list[str], bool, int] | str:
    """Per-item outcomes and reasons, whether any was throttled, how many were already present (409 on our
    own `_id`); or a reason string when the answer is unusable (the driver retries the whole request)."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"unreadable _bulk answer: {body[:200]!r}"
    if not isinstance(answer, dict):
        return "unreadable _bulk answer"
    if answer.get("errors") is False:
        return [Outcome.OK] * count, [""] * count, False, 0
    items = answer.get("items")
    if not isinstance(items, list) or len(items) != count:
        got = len(items) if isinstance(items, list) else "no"
        return f"_bulk answered {got} items for {count} documents"
    outcomes: list[Outcome] = []
    reasons: list[str] = []
    throttled = False
    present = 0
    for item in items:
        result: Any = next(iter(item.values()), {}) if isinstance(item, dict) and item else {}
        status = result.get("status", 0) if isinstance(result, dict) else 0
        if 200 <= status < 300 or (status == 409 and op == "create" and own_ids):
            present += status == 409
            outcomes.append(Outcome.OK)
            reasons.append("")
            continue
        error = result.get("error") if isinstance(result, dict) else None
        if isinstance(error, dict):
            detail = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        else:
            detail = str(error) if error else "no error given"
        reason = f"{status} {detail}"[:1000]
        if status == 429:
            throttled = True
            outcomes.append(Outcome.RETRY)
        elif status >= 500 or status == 0:
            outcomes.append(Outcome.RETRY)
        else:
            outcomes.append(Outcome.DROP)
        reasons.append(reason)
    return outcomes, reasons, throttled, present


Lines = Callable[[str, Sequence[Any], Sequence[str] | None], list[bytes]]
