"""cloudwatch_logs behind the real output driver, with throttling and 5xx injected in front of moto.

Proves: failed requests are retried with backoff (the driver's, not botocore's),
nothing is lost or duplicated, records arrive in order per stream, and the
number of requests stays bounded (each fault costs exactly one extra request).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.testing import wait_for
from collector_plugins.outputs.cloudwatch_logs import CloudWatchLogsOutput
from tests.aws_faults import FaultProxy
from tests.moto import MotoServer
from tests.plugins.aws_stream_fakes import DriverHarness


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.endpoint_url) as p:
        yield p


class Pipeline(DriverHarness):
    """One cloudwatch_logs output run by the driver over a memory buffer, as the runtime runs it."""

    def __init__(self, tmp_path: Path, proxy: FaultProxy, **options: Any) -> None:
        body: dict[str, Any] = {
            "type": "cloudwatch_logs",
            "inputs": ["app"],
            "endpoint_url": proxy.url,
            "log_group": "/delivery",
            "log_stream": "{app}",
            "retry": {"initial_backoff": "20ms", "max_backoff": "100ms"},
            "batch": {"timeout": "50ms"},
        }
        body.update(options)
        super().__init__(tmp_path, CloudWatchLogsOutput, body)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Pipeline:
        await self.output.start()
        self.task = self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stopping.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)
        if self.runner.intake_task is not None:
            self.runner.intake_task.cancel()
        await self.output.stop()
        self.dlq.close()

    async def feed(self, records: list[dict[str, Any]], nbytes: int | None = None) -> None:
        await super().feed(records, sum(len(r["message"]) for r in records) if nbytes is None else nbytes)


def read_all(moto: MotoServer, group: str, stream: str) -> list[str]:
    logs = moto.client("logs")
    out: list[str] = []
    token: str | None = None
    while True:
        kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        page = logs.get_log_events(**kwargs)
        out += [e["message"] for e in page["events"]]
        if not page["events"] or page["nextForwardToken"] == token:
            return out
        token = page["nextForwardToken"]


def make_records(n: int, apps: str = "ab") -> list[dict[str, Any]]:
    now = time.time() - 60
    return [{"timestamp": now + i / 1000, "message": f"m{i:05d}", "app": apps[i % len(apps)]} for i in range(n)]


async def test_throttling_and_5xx_are_retried_nothing_lost_no_retry_storm(
    tmp_path: Path, proxy: FaultProxy, moto: MotoServer
) -> None:
    records = make_records(3000)
    async with Pipeline(tmp_path, proxy, batch={"max_events": 500, "timeout": "200ms"}) as pipe:
        await pipe.feed(records[:10])  # create the group and both streams first
        await wait_for(lambda: pipe.settled(10), timeout=10)
        puts_before = proxy.count("PutLogEvents", faulted=False)
        proxy.fail_next(3, "throttle", match="PutLogEvents")
        proxy.fail_next(2, "5xx", match="PutLogEvents")
        for start in range(10, 3000, 500):
            await pipe.feed(records[start : start + 500])
        await wait_for(lambda: pipe.settled(3000), timeout=20)
        assert pipe.stats.sent_events == 3000
        assert pipe.stats.retries >= 5
        assert pipe.stats.dropped == {}
    assert proxy.faults == 5
    good_puts = proxy.count("PutLogEvents", faulted=False) - puts_before
    # Each fault costs one resend of what it refused and nothing else: 2990 records in requests of at most
    # 500 (6, or 7 when a cut falls between feeds), one PutLogEvents per stream each, accepted exactly once.
    assert proxy.count("PutLogEvents", faulted=True) == 5
    assert 12 <= good_puts <= 14
    for app in "ab":
        expected = [r["message"] for r in records if r["app"] == app]
        assert read_all(moto, "/delivery", app) == expected  # every line, in order, once


async def test_permanent_refusal_goes_to_dead_letters_with_the_reason(
    tmp_path: Path, proxy: FaultProxy, moto: MotoServer
) -> None:
    async with Pipeline(tmp_path, proxy, log_stream="s") as pipe:
        proxy.fail_next(100, "error", code="AccessDeniedException", message="no", match="CreateLogGroup")
        await pipe.feed(make_records(5))
        await wait_for(lambda: pipe.settled(5), timeout=10)
        assert pipe.stats.dropped == {"dead_lettered": 5}
        assert pipe.stats.retries == 0
    reasons = {e["reason"] for e in pipe.dead()}
    assert reasons == {
        "access_denied: missing IAM permission logs:CreateLogGroup on arn:aws:logs:eu-west-1:*:log-group:/delivery:*"
    }


async def test_rejected_old_events_become_dead_letters_and_the_rest_arrives(
    tmp_path: Path, proxy: FaultProxy, moto: MotoServer
) -> None:
    now = time.time()
    records = [
        {"timestamp": now - 20 * 86400, "message": "too old", "app": "a"},
        {"timestamp": now, "message": "fine", "app": "a"},
    ]
    async with Pipeline(tmp_path, proxy) as pipe:
        await pipe.feed(records)
        await wait_for(lambda: pipe.settled(2), timeout=10)
        assert pipe.stats.sent_events == 1
    assert [(e["record"]["message"], e["reason"].split(":")[0]) for e in pipe.dead()] == [
        ("too old", "rejected_too_old")
    ]
    assert read_all(moto, "/delivery", "a") == ["fine"]


async def test_a_throttled_creation_call_is_retried_on_its_own(
    tmp_path: Path, proxy: FaultProxy, moto: MotoServer
) -> None:
    # The chain: PutLogEvents -> CreateLogStream -> CreateLogGroup -> CreateLogStream -> PutLogEvents.
    # A throttled call used to restart it from PutLogEvents; now the retry resumes at the call that failed.
    proxy.fail_next(1, "throttle", match="CreateLogGroup")
    proxy.fail_next(1, "throttle", match="CreateLogStream")
    async with Pipeline(tmp_path, proxy, log_stream="s") as pipe:
        await pipe.feed(make_records(5))
        await wait_for(lambda: pipe.settled(5), timeout=10)
        assert pipe.stats.sent_events == 5
        assert pipe.runner.send_rate.throttled == 2  # THROTTLED, so the output's send rate was cut
    calls = [(r.operation, r.faulted is not None) for r in proxy.requests]
    assert calls == [
        ("PutLogEvents", False),  # ResourceNotFoundException: the stream is missing
        ("CreateLogStream", True),  # throttled
        ("CreateLogStream", False),  # ResourceNotFoundException: the group is missing too
        ("CreateLogGroup", True),  # throttled
        ("CreateLogGroup", False),  # retried on its own
        ("CreateLogStream", False),
        ("PutLogEvents", False),
    ]
    assert read_all(moto, "/delivery", "s") == [r["message"] for r in make_records(5)]


async def test_a_stream_someone_else_created_is_used(tmp_path: Path, proxy: FaultProxy, moto: MotoServer) -> None:
    logs = moto.client("logs")
    logs.create_log_group(logGroupName="/delivery")
    # Another node creates the stream between our PutLogEvents and our CreateLogStream.
    proxy.fail_next(1, "error", code="ResourceNotFoundException", match="PutLogEvents", message="no stream")
    logs.create_log_stream(logGroupName="/delivery", logStreamName="s")
    async with Pipeline(tmp_path, proxy, log_stream="s") as pipe:
        await pipe.feed(make_records(3))
        await wait_for(lambda: pipe.settled(3), timeout=10)
        assert pipe.stats.sent_events == 3 and pipe.stats.retries == 0
    assert [r.operation for r in proxy.requests] == ["PutLogEvents", "CreateLogStream", "PutLogEvents"]
    assert [r.status for r in proxy.requests][1] == 400  # ResourceAlreadyExistsException: counted as created


async def test_a_throttled_retention_policy_is_set_on_the_retry(
    tmp_path: Path, proxy: FaultProxy, moto: MotoServer
) -> None:
    proxy.fail_next(1, "throttle", match="PutRetentionPolicy")
    async with Pipeline(tmp_path, proxy, log_stream="s", retention_days=7) as pipe:
        await pipe.feed(make_records(2))
        await wait_for(lambda: pipe.settled(2), timeout=10)
        assert pipe.stats.sent_events == 2
    assert [(r.operation, r.faulted is not None) for r in proxy.requests] == [
        ("PutLogEvents", False),
        ("CreateLogStream", False),  # ResourceNotFoundException: no group
        ("CreateLogGroup", False),
        ("PutRetentionPolicy", True),  # throttled: the send ends here
        ("PutRetentionPolicy", False),  # the retry resumes with it, not with PutLogEvents
        ("CreateLogStream", False),
        ("PutLogEvents", False),
    ]
    (group,) = moto.client("logs").describe_log_groups(logGroupNamePrefix="/delivery")["logGroups"]
    assert group["retentionInDays"] == 7
