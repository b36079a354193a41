"""`sns`: each record published to an SNS topic with PublishBatch, answered per record.

The message is the `message` template rendered (`format: text`) or the record as JSON
(`format: json`); `rule`, `state` and `event` travel as message attributes, so subscriptions can
filter on them. For a FIFO topic (`.fifo`), the message group is the rule (or `group_id`) and the
deduplication id the notification's `id`, so a notification published again after a crash is
delivered once. Failed entries are classified by their code (throttling and internal errors
retried, the rest dead-lettered); a failed call by the shared AWS layer. aiobotocore is imported
when the output starts.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import LOGS, Batch
from collector.send_result import Outcome, SendResult
from collector_plugins.common.alerting.render import render_text
from collector_plugins.common.aws.settings import AwsSettings
from collector_plugins.common.record_encoding import json_default
from collector_plugins.outputs.sns.limits import LIMITS, MAX_SUBJECT_CHARS

ACTION = "sns:Publish"
_TOPIC_RE = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
RETRYABLE_CODES = frozenset(
    {"Throttling", "ThrottledException", "InternalError", "KMSThrottling", "ServiceUnavailable"}
)
ATTRIBUTES = ("rule", "state", "event", "source")


class SnsConfig(AwsSettings, OutputConfig):
    type: Literal["sns"] = Field(description="Publishes records to an SNS topic.", examples=["sns"])
    topic_arn: str = Field(description="The topic's ARN.", examples=["arn:aws:sns:eu-west-1:123456789012:alerts"])
    format: Literal["text", "json"] = Field(
        "text", description="`text`: the `message` template rendered; `json`: the record as JSON.", examples=["json"]
    )
    message: str = Field(
        "{message}\n\n{reason}\nhost: {host}\nsince: {since}",
        description="Template of the text message (record fields in braces).",
        examples=["{rule} is {state} on {host}: {reason}"],
    )
    subject: str = Field(
        "{message}",
        description="Template of the subject (e-mail subscriptions), cut to 100 ASCII characters.",
        examples=["[{state}] {rule}"],
    )
    group_id: str | None = Field(
        None, description="FIFO topics: the message group (default: the record's `rule`).", examples=["alerts"]
    )

    @field_validator("topic_arn")
    @classmethod
    def _check_arn(cls, value: str) -> str:
        if not _TOPIC_RE.match(value):
            raise ValueError(f"{value!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
        return value


def subject_of(text: str) -> str:
    ascii_only = text.encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ").strip()
    return ascii_only[:MAX_SUBJECT_CHARS] or "notification"


class SnsOutput(Output):
    type_name: ClassVar[str] = "sns"
    description: ClassVar[str] = "Publishes notifications (or any log record) to an Amazon SNS topic."
    Config: ClassVar[type[SnsConfig]] = SnsConfig
    accepts: ClassVar[frozenset[str]] = frozenset({LOGS})
    limits = LIMITS

    config: SnsConfig

    def __init__(self, config: SnsConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.clients: Any = None
        self._fifo = config.topic_arn.endswith(".fifo")
        self.published = 0
        self.failed_entries = 0
        self.requests = 0

    def _clients(self) -> Any:
        if self.clients is None:
            from collector_plugins.common.aws.session import AwsClients

            self.clients = AwsClients(self.config, self.ctx)
        return self.clients

    async def start(self) -> None:
        await self._clients().client("sns")

    async def stop(self) -> None:
        if self.clients is not None:
            await self.clients.close()

    def entry(self, i: int, record: dict[str, Any]) -> dict[str, Any]:
        note = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for k, v in record.items()}
        if self.config.format == "json":
            message = orjson.dumps(note, default=json_default).decode()
        else:
            message = render_text(self.config.message, note)
        entry: dict[str, Any] = {
            "Id": str(i),
            "Message": message,
            "Subject": subject_of(render_text(self.config.subject, note)),
        }
        attributes = {
            name: {"DataType": "String", "StringValue": str(note[name])}
            for name in ATTRIBUTES
            if isinstance(note.get(name), str) and note[name]
        }
        if attributes:
            entry["MessageAttributes"] = attributes
        if self._fifo:
            entry["MessageGroupId"] = self.config.group_id or str(note.get("rule") or "collector")
            dedup = str(note.get("id") or message)
            entry["MessageDeduplicationId"] = hashlib.sha256(dedup.encode()).hexdigest()[:64]
        return entry

    def record_size(self, record: Any) -> int:
        return len(self.entry(0, record)["Message"].encode())

    async def write(self, batch: Batch) -> None:
        from collector_plugins.common.aws.records import raise_unless_delivered

        raise_unless_delivered(await self.send(batch))

    async def send(self, batch: Batch) -> SendResult:
        from botocore.exceptions import BotoCoreError, ClientError

        from collector_plugins.common.aws.errors import classify_aws_error

        records = batch.records
        if not records:
            return SendResult.ok()
        entries = [self.entry(i, r) for i, r in enumerate(records)]
        client = await self._clients().client("sns")
        self.requests += 1
        try:
            response = await client.publish_batch(TopicArn=self.config.topic_arn, PublishBatchRequestEntries=entries)
        except (BotoCoreError, ClientError, OSError) as exc:
            return classify_aws_error(exc, action=ACTION, log=self.log, resource=self.config.topic_arn)
        failed = response.get("Failed") or []
        if not failed:
            self.published += len(records)
            return SendResult.ok()
        outcomes = [Outcome.OK] * len(records)
        reasons = [""] * len(records)
        for entry in failed:
            i = int(entry.get("Id", -1))
            if not 0 <= i < len(records):
                continue
            code = str(entry.get("Code", ""))
            retry = code in RETRYABLE_CODES or not entry.get("SenderFault", False)
            outcomes[i] = Outcome.RETRY if retry else Outcome.DROP
            reasons[i] = f"{code}: {entry.get('Message', '')}"
        self.failed_entries += len(failed)
        self.published += outcomes.count(Outcome.OK)
        return SendResult.partial(outcomes, reasons)

    def counters(self) -> dict[str, float]:
        return {"published": self.published, "failed_entries": self.failed_entries, "requests": self.requests}
