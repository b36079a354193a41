"""`LogResources`: what the `cloudwatch_logs` output knows about log groups and streams, and how it creates them.

Design note. CloudWatch Logs answers PutLogEvents to a missing stream with
ResourceNotFoundException; the output then creates what is missing. Under
throttling (a fleet starting at once meets it first on CreateLogGroup and
CreateLogStream, whose request quotas are low) that chain must not start over
on every failure: a first delivery would need PutLogEvents, CreateLogStream,
CreateLogGroup, CreateLogStream and PutLogEvents to succeed in a row. So, per
output:

- groups known to exist (created here, or found existing) are remembered, so
  a new stream in a known group costs one CreateLogStream;
- for each (group, stream) found missing, the step to take next is
  remembered: "group" (CreateLogGroup), "retention" (PutRetentionPolicy on a
  group created here, with `retention_days`), "stream" (CreateLogStream). A
  call that fails ends the send with its classified result (THROTTLED, RETRY,
  DROP) and the step stays, so the retry resumes at that very call;
- a group or stream someone else created meanwhile
  (ResourceAlreadyExistsException) counts as created; a group someone else
  created keeps its own settings (no retention, tags or key are applied);
- both memories are bounded (`KNOWN_MAX` names each, the oldest forgotten
  first), since templates may name many groups and streams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from collector.send_result import Outcome, SendResult
from collector_plugins.common.aws.errors import error_code

KNOWN_MAX = 10_000
_FAILURES = (ClientError, BotoCoreError, OSError, TimeoutError)


class Destination(Protocol):
    group: str
    stream: str


class GroupSettings(Protocol):
    # Read-only members: the settings are a frozen config model, and these are only read.
    @property
    def create_log_group(self) -> bool: ...
    @property
    def retention_days(self) -> int | None: ...
    @property
    def kms_key_id(self) -> str | None: ...
    @property
    def tags(self) -> dict[str, str]: ...
    @property
    def log_group_class(self) -> str | None: ...


# (exception, IAM action, destination) -> the classified result (logs access errors once)
Classify = Callable[[BaseException, str, Any], SendResult]


class LogResources:
    def __init__(self, settings: GroupSettings, classify: Classify, on_group_created: Callable[[str], None]) -> None:
        self.settings = settings
        self.classify = classify
        self.on_group_created = on_group_created
        self.groups: dict[str, None] = {}  # groups known to exist (an ordered, bounded set)
        self.missing: dict[tuple[str, str], str] = {}  # (group, stream) -> the step to take next
        self.groups_created = 0
        self.streams_created = 0

    def pending(self, dest: Destination) -> bool:
        """Whether `dest` is known to lack its stream (create before sending)."""
        return (dest.group, dest.stream) in self.missing

    def stream_missing(self, dest: Destination) -> None:
        """PutLogEvents said ResourceNotFoundException: the stream (at least) must be created."""
        remember(self.missing, (dest.group, dest.stream), "stream")

    async def create(self, client: Any, dest: Destination) -> SendResult | None:
        """Create what `dest` lacks, from the remembered step on; None once the stream exists.

        Steps: "stream" (CreateLogStream; ResourceNotFoundException means the group is missing too),
        "group" (CreateLogGroup), "retention" (PutRetentionPolicy), "again" (CreateLogStream in a group
        that exists).
        """
        key = (dest.group, dest.stream)
        while True:
            step = self.missing.get(key, "stream")
            if step == "group":
                failure = await self._group(client, dest, key)
                if failure is not None:
                    return failure
                step = self.missing.get(key, "again")
            if step == "retention":
                failure = await self._retention(client, dest, key)
                if failure is not None:
                    return failure
                step = "again"
            try:
                await client.create_log_stream(logGroupName=dest.group, logStreamName=dest.stream)
                self.streams_created += 1
            except ClientError as exc:
                code = error_code(exc)
                if code == "ResourceNotFoundException":
                    if step == "stream":
                        self.groups.pop(dest.group, None)  # deleted meanwhile, or never there
                        self.missing[key] = "group"
                        continue
                    # The group was just created or found: not visible yet. Try again later, from here.
                    return SendResult.retry(f"log group {dest.group!r} not found right after it was created")
                if code != "ResourceAlreadyExistsException":
                    return self.classify(exc, "logs:CreateLogStream", dest)
            except (BotoCoreError, OSError, TimeoutError) as exc:
                return self.classify(exc, "logs:CreateLogStream", dest)
            self.missing.pop(key, None)
            remember(self.groups, dest.group, None)
            return None

    async def _group(self, client: Any, dest: Destination, key: tuple[str, str]) -> SendResult | None:
        """The CreateLogGroup step (skipped for a group known to exist); sets the next step."""
        if dest.group in self.groups:
            self.missing[key] = "again"  # the stream's group exists: CreateLogStream once more, no loop
            return None
        settings = self.settings
        if not settings.create_log_group:
            self.missing.pop(key, None)  # someone may create it: ask the API again next time
            return SendResult.drop(f"log group {dest.group!r} does not exist and create_log_group is false")
        args: dict[str, Any] = {"logGroupName": dest.group}
        if settings.kms_key_id:
            args["kmsKeyId"] = settings.kms_key_id
        if settings.tags:
            args["tags"] = dict(settings.tags)
        if settings.log_group_class:
            args["logGroupClass"] = settings.log_group_class
        try:
            await client.create_log_group(**args)
        except ClientError as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                return self.classify(exc, "logs:CreateLogGroup", dest)
            remember(self.groups, dest.group, None)  # created meanwhile by someone else: its settings stay
            self.missing[key] = "again"
            return None
        except (BotoCoreError, OSError, TimeoutError) as exc:
            return self.classify(exc, "logs:CreateLogGroup", dest)
        remember(self.groups, dest.group, None)
        self.groups_created += 1
        self.on_group_created(dest.group)
        self.missing[key] = "retention" if settings.retention_days else "again"
        return None

    async def _retention(self, client: Any, dest: Destination, key: tuple[str, str]) -> SendResult | None:
        """PutRetentionPolicy on a group created here. A retryable failure is retried on its own; a
        permanent one (no permission) is logged and the group used as it is: it takes events."""
        try:
            await client.put_retention_policy(logGroupName=dest.group, retentionInDays=self.settings.retention_days)
        except _FAILURES as exc:
            result = self.classify(exc, "logs:PutRetentionPolicy", dest)
            if result.outcome is not Outcome.DROP:
                return result
        self.missing[key] = "again"
        return None


def remember(known: dict[Any, Any], key: Any, value: Any) -> None:
    """Set `known[key]`, forgetting the oldest entry past `KNOWN_MAX` (memory stays bounded)."""
    known.pop(key, None)
    known[key] = value
    if len(known) > KNOWN_MAX:
        del known[next(iter(known))]
