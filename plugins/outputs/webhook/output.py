"""`webhook`: each notification (or any log record) POSTed as JSON: templated, Slack or Teams.

One request per record (limits.py). The answer classifies it for the shared driver: 2xx
delivered; 408, 429 and 5xx (and connection errors, timeouts) retried with backoff, honouring
`Retry-After`; any other 4xx is permanent (dead-lettered, replayable with `collector dlq`).
aiohttp is imported when the output starts.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from collector.api import ComponentContext, Output, OutputConfig
from collector.config.secrets import SECRET
from collector.events import LOGS, Batch
from collector.send_result import PermanentError, RetryableError
from collector.units import Duration
from collector_plugins.common.alerting.render import render_template, render_text, slack_body, teams_body
from collector_plugins.common.record_encoding import json_default
from collector_plugins.outputs.webhook.limits import LIMITS

RETRY_STATUSES = frozenset({408, 425, 429})


class WebhookConfig(OutputConfig):
    type: Literal["webhook"] = Field(description="POSTs records as JSON to a URL.", examples=["webhook"])
    url: str = Field(
        pattern=r"^https?://",
        description="Where to POST (secret: Slack and Teams URLs carry their token).",
        examples=["${SLACK_WEBHOOK_URL}"],
        json_schema_extra=SECRET,
    )
    format: Literal["json", "slack", "teams"] = Field(
        "json",
        description="`json`: `body` rendered (default: the record itself); `slack`: an incoming-webhook message; "
        "`teams`: a connector MessageCard.",
        examples=["slack"],
    )
    body: Any = Field(
        None,
        description="JSON template for `format: json`: strings may name record fields in braces; a string that "
        "is exactly `{field}` keeps the value's type.",
        examples=[{"alert": "{rule}", "state": "{state}", "text": "{message}", "labels": "{labels}"}],
    )
    text: str = Field(
        "{message}",
        description="Text template of Slack and Teams messages.",
        examples=["{rule} is {state} on {host}: {reason}"],
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra request headers; give tokens through `${VAR}` (substituted values never show in errors).",
        examples=[{"Authorization": "Bearer ${WEBHOOK_TOKEN}"}],
    )
    timeout: Duration = Field(10.0, description="Whole-request timeout.", examples=["5s"])


class WebhookOutput(Output):
    type_name: ClassVar[str] = "webhook"
    description: ClassVar[str] = "POSTs notifications (or any log record) as templated JSON, Slack or Teams bodies."
    Config: ClassVar[type[WebhookConfig]] = WebhookConfig
    accepts: ClassVar[frozenset[str]] = frozenset({LOGS})
    limits = LIMITS

    config: WebhookConfig

    def __init__(self, config: WebhookConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self._session: Any = None
        self.requests = 0
        self.failed_requests = 0

    def body(self, record: dict[str, Any]) -> dict[str, Any] | list[Any] | Any:
        note = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for k, v in record.items()}
        if self.config.format == "slack":
            return slack_body(note, render_text(self.config.text, note))
        if self.config.format == "teams":
            return teams_body(note, render_text(self.config.text, note))
        if self.config.body is None:
            return note
        return render_template(self.config.body, note)

    async def start(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.config.timeout))

    async def write(self, batch: Batch) -> None:
        if self._session is None:
            await self.start()
        for record in batch.records:
            await self._post(record)

    async def _post(self, record: dict[str, Any]) -> None:

        import aiohttp

        data = orjson.dumps(self.body(record), default=json_default)
        headers = {"Content-Type": "application/json", **self.config.headers}
        self.requests += 1
        try:
            async with self._session.post(self.config.url, data=data, headers=headers) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self.failed_requests += 1
            raise RetryableError(f"webhook unreachable: {type(exc).__name__}") from None
        if 200 <= status < 300:
            return
        self.failed_requests += 1
        if status in RETRY_STATUSES or status >= 500:
            after = float(retry_after) if retry_after and retry_after.isdigit() else None
            raise RetryableError(f"webhook answered HTTP {status}", after, throttled=status == 429)
        raise PermanentError(f"webhook refused the notification: HTTP {status}")

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def counters(self) -> dict[str, float]:
        return {"requests": self.requests, "failed_requests": self.failed_requests}
