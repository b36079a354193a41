"""`http`: records POSTed (or PUT) to any HTTP endpoint as NDJSON, a JSON array or text lines.

One driver request is one HTTP request; the whole answer classifies the whole
batch (`common/http_delivery/client.classify_status`): 2xx delivered; 429
THROTTLED and 408/5xx RETRY, both honouring Retry-After; any other 4xx DROP to
dead letters with the status and the start of the answer. Connection errors and
timeouts are retried. Auth (basic, bearer, SigV4), gzip, headers and TLS with a
custom CA are `common/http_delivery`'s.

Bodies: `ndjson` one JSON document per record, each line ending with a newline
(the last one too); `json_array` one JSON array of the records; `text` each
record's `message` (JSON for records without one), newline-terminated.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import KINDS, Batch
from collector.send_result import SendResult
from collector_plugins.common.aws.records import raise_unless_delivered
from collector_plugins.common.http_delivery.client import HttpSender, classify_status
from collector_plugins.common.http_delivery.settings import HttpSettings
from collector_plugins.common.record_encoding import encode_json, encode_text

CONTENT_TYPES = {
    "ndjson": "application/x-ndjson",
    "json_array": "application/json",
    "text": "text/plain; charset=utf-8",
}


def encode_array(records: list[Any]) -> bytes:
    """`[doc,doc,...]` from the shared JSON-lines encoder (one pass, no per-record re-encoding)."""
    if not records:
        return b"[]"
    lines = encode_json(records)
    return b"[" + lines[:-1].replace(b"\n", b",") + b"]"


class HttpConfig(HttpSettings, OutputConfig):
    type: Literal["http"] = Field(description="Sends records to an HTTP endpoint.", examples=["http"])
    url: str = Field(
        pattern=r"^https?://[^/?#]+",
        description="Where to send each request.",
        examples=["https://ingest.example.com/v1/logs"],
    )
    method: Literal["POST", "PUT"] = Field("POST", description="HTTP method.", examples=["POST"])
    format: Literal["ndjson", "json_array", "text"] = Field(
        "ndjson",
        description="Body: `ndjson` (a JSON document per line), `json_array` (one JSON array), `text` (each "
        "record's message per line).",
        examples=["ndjson"],
    )
    content_type: str | None = Field(
        None,
        description="Content-Type header; unset: the format's own (application/x-ndjson, application/json, "
        "text/plain; charset=utf-8).",
        examples=["application/json"],
    )


class HttpOutput(Output):
    type_name: ClassVar[str] = "http"
    description: ClassVar[str] = "Sends records to an HTTP endpoint: NDJSON, JSON array or text, gzip, auth, retries."
    Config: ClassVar[type[HttpConfig]] = HttpConfig
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    default_batch_timeout: ClassVar[float] = 1.0
    # No API limit: 1,000 records or 5 MiB per request unless `batch:` says otherwise.
    default_max_events: ClassVar[int | None] = 1000
    default_max_bytes: ClassVar[int | None] = 5 * 1024 * 1024

    config: HttpConfig

    def __init__(self, config: HttpConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.http = HttpSender(config, connections=config.concurrency)
        self.encode = {"ndjson": encode_json, "json_array": encode_array, "text": encode_text}[config.format]
        self.content_type = config.content_type or CONTENT_TYPES[config.format]
        self.requests = 0
        self.rejected_requests = 0

    async def start(self) -> None:
        await self.http.start()

    async def stop(self) -> None:
        await self.http.close()

    def counters(self) -> dict[str, float]:
        return {"requests": self.requests, "rejected_requests": self.rejected_requests}

    async def write(self, batch: Batch) -> None:
        """Deliver the whole batch once or raise (for callers outside the driver, which uses `send`)."""
        raise_unless_delivered(await self.send(batch))

    async def send(self, batch: Batch) -> SendResult:
        if not batch.records:
            return SendResult.ok()
        body = self.encode(batch.records)
        self.requests += 1
        response = await self.http.request(self.config.method, self.config.url, body, self.content_type)
        result = classify_status(response)
        if result.outcome.value == "drop":
            self.rejected_requests += 1
        return result
