"""`BulkOutput`: what the `opensearch` and `elasticsearch` outputs share (`_bulk`, per-item results, 413).

One `send` is one batch from the driver, named per record (`record_origins`):

- the records become `_bulk` lines (`bulk.BulkEncoder`), cut into bodies of at
  most the request limit (`batch.max_bytes`, itself capped by the plugin's
  `limits.py`), counted uncompressed and exactly;
- each body is POSTed (gzip, auth and TLS by `common/http_delivery`);
- a whole-request 413 (the cluster's `http.max_content_length` is lower than we
  were told) halves the body and sends both halves, down to one document, which
  is then dead-lettered as too large;
- a whole-request 429 (THROTTLED) or 408/5xx (RETRY) keeps the Retry-After;
  other 4xx DROP; a 200 is read item by item (`bulk.read_items`).

Several bodies (a cut or a 413 split) merge into one per-record answer, so the
driver resends only the records that need it, each with its own `_id`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from collector.api import ComponentContext, Output
from collector.events import Batch
from collector.send_result import Outcome, PermanentError, RetryableError, SendResult
from collector_plugins.common.aws.records import raise_unless_delivered
from collector_plugins.common.http_delivery.client import HttpSender, classify_status
from collector_plugins.common.search_bulk.bulk import BulkEncoder, read_items
from collector_plugins.common.search_bulk.settings import SearchSettings

BULK_QUERY = "?filter_path=errors,items.*.status,items.*.error"
NDJSON = "application/x-ndjson"


class _Merged:
    """Per-record outcomes of several bodies, plus the longest Retry-After and whether any throttled."""

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self.reasons: list[str] = []
        self.retry_after: float | None = None
        self.throttled = False

    def whole(self, result: SendResult, count: int) -> None:
        self.outcomes.extend([result.outcome] * count)
        self.reasons.extend([result.reason] * count)
        self.note(result.retry_after, result.throttled)

    def note(self, retry_after: float | None, throttled: bool) -> None:
        if retry_after is not None:
            self.retry_after = max(self.retry_after or 0.0, retry_after)
        self.throttled = self.throttled or throttled


class BulkOutput(Output):
    """Base of the search outputs; a subclass sets `type_name`, `Config`, `limits` and may add `install`."""

    record_origins: ClassVar[bool] = True
    default_batch_timeout: ClassVar[float] = 1.0

    config: SearchSettings  # type: ignore[assignment]  # the subclass's config mixes SearchSettings in

    def __init__(self, config: Any, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.encoder = BulkEncoder(config, ctx.host.as_dict(), ctx.name)
        self.http = HttpSender(config, connections=config.concurrency)
        self.base = config.endpoint.rstrip("/")
        self.bulk_url = self.base + "/_bulk" + BULK_QUERY
        limit = type(self).limits.max_bytes
        bounds = [b for b in (limit.value if limit else None, config.batch.max_bytes) if b is not None]
        self.max_body = min(bounds) if bounds else 10 * 1024 * 1024  # uncompressed bytes of one body
        self.requests = 0
        self.split_413 = 0
        self.items_retried = 0
        self.items_rejected = 0
        self.items_conflict_delivered = 0

    async def start(self) -> None:
        await self.http.start()
        try:
            if self.config.index_template is not None:
                template = self.config.index_template
                await self.put(f"_index_template/{template.name}", template.body)
            await self.install()
        except BaseException:
            await self.http.close()
            raise

    async def install(self) -> None:
        """Subclass hook: more resources to PUT at start (ISM or ILM policies)."""

    async def stop(self) -> None:
        await self.http.close()

    async def put(self, path: str, body: dict[str, Any], exists_ok: bool = False) -> None:
        """PUT a JSON document at start; failures raise (the supervisor restarts the output with backoff)."""
        import orjson

        response = await self.http.request("PUT", f"{self.base}/{path}", orjson.dumps(body), "application/json")
        if 200 <= response.status < 300 or (exists_ok and response.status == 409):
            self.log.info("installed", extra={"fields": {"component": self.ctx.name, "path": path}})
            return
        detail = response.body[:500].decode("utf-8", "replace")
        message = f"PUT {path}: HTTP {response.status}: {detail}"
        if response.status == 429 or response.status >= 500:
            raise RetryableError(message)
        raise PermanentError(message)

    def record_size(self, record: Any) -> int:
        # The document as sent plus an action line's usual size; the body is cut again exactly in `send`.
        return len(self.encoder.document("logs", record)) + 100

    def counters(self) -> dict[str, float]:
        return {
            "requests": self.requests,
            "requests_split_413": self.split_413,
            "items_retried": self.items_retried,
            "items_rejected": self.items_rejected,
            "items_already_present": self.items_conflict_delivered,
        }

    async def write(self, batch: Batch) -> None:
        """Deliver the whole batch once or raise (for callers outside the driver, which uses `send`)."""
        raise_unless_delivered(await self.send(batch))

    async def send(self, batch: Batch) -> SendResult:
        records = batch.records
        if not records:
            return SendResult.ok()
        lines = self.encoder.lines(batch.kind, records, batch.record_origins)
        bodies = self._cut(lines)
        merged = _Merged()
        if len(bodies) == 1:
            return await self._post(lines)
        for start, end in bodies:
            result = await self._post(lines[start:end])
            self._merge(merged, result, end - start)
        return SendResult.partial(merged.outcomes, merged.reasons, merged.retry_after, merged.throttled)

    def _cut(self, lines: list[bytes]) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        start, size = 0, 0
        for i, line in enumerate(lines):
            if size + len(line) > self.max_body and i > start:
                spans.append((start, i))
                start, size = i, 0
            size += len(line)
        spans.append((start, len(lines)))
        return spans

    @staticmethod
    def _merge(merged: _Merged, result: SendResult, count: int) -> None:
        if result.per_record is None:
            merged.whole(result, count)
            return
        merged.outcomes.extend(result.per_record)
        merged.reasons.extend(result.record_reasons or [result.reason] * count)
        merged.note(result.retry_after, result.throttled)

    async def _post(self, lines: list[bytes]) -> SendResult:
        """One body; a 413 halves it (recursively); the answer as a whole or per record."""
        body = b"".join(lines)
        if len(lines) == 1 and len(body) > self.max_body:
            return SendResult.drop(f"document too large: {len(body)} bytes over the {self.max_body} limit")
        self.requests += 1
        response = await self.http.request("POST", self.bulk_url, body, NDJSON)
        if response.status == 413:
            if len(lines) == 1:
                return SendResult.drop("413 Request Entity Too Large for a single document")
            self.split_413 += 1
            half = len(lines) // 2
            merged = _Merged()
            for part in (lines[:half], lines[half:]):
                self._merge(merged, await self._post(part), len(part))
            return SendResult.partial(merged.outcomes, merged.reasons, merged.retry_after, merged.throttled)
        if response.status != 200:
            return classify_status(response)
        read = read_items(response.body, len(lines), self.config.op, self.encoder.stable_ids)
        if isinstance(read, str):
            return SendResult.retry(read)
        outcomes, reasons, throttled, present = read
        self.items_conflict_delivered += present
        retried = outcomes.count(Outcome.RETRY)
        rejected = outcomes.count(Outcome.DROP)
        if not retried and not rejected:
            return SendResult.ok()
        self.items_retried += retried
        self.items_rejected += rejected
        return SendResult.partial(outcomes, reasons, throttled=throttled)
