"""The notifier outputs against real peers: webhook (aiohttp server), SNS (moto, read back via SQS), exec."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.events import LOGS, Batch
from collector.send_result import Outcome, PermanentError, RetryableError
from collector.testing import component_context
from collector_plugins.common.alerting.engine import Engine
from collector_plugins.common.alerting.rules import Rule
from collector_plugins.outputs.exec.output import ExecConfig, ExecOutput
from collector_plugins.outputs.sns.output import SnsConfig, SnsOutput
from collector_plugins.outputs.webhook.output import WebhookConfig, WebhookOutput
from tests.moto import MotoServer
from tests.plugins.webhook_receiver import WebhookReceiver

T0 = 1_800_000_000.0


def notifications() -> list[dict[str, Any]]:
    """Real notifications from the engine: an alarm for host web-1 and its resolution."""
    from pydantic import TypeAdapter

    rule = TypeAdapter(Rule).validate_python(
        {"name": "api_errors", "type": "frequency", "num_events": 2, "timeframe": "1m", "query_key": "host",
         "labels": {"severity": "critical"}, "description": "API errors"}
    )  # fmt: skip
    engine = Engine([rule], T0, source="alerting", host="node-1")
    notes = engine.process(LOGS, [{"message": "boom", "host": "web-1"}] * 2, T0)
    notes += engine.tick(T0 + 120)
    assert [n["event"] for n in notes] == ["alarm", "resolved"]
    return notes


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver().start()
    yield r
    r.stop()


async def webhook(tmp_path: Path, **body: Any) -> WebhookOutput:
    config = WebhookConfig.model_validate({"type": "webhook", "inputs": ["notes"], **body})
    out = WebhookOutput(config, component_context("hook", tmp_path))
    await out.start()
    return out


async def test_webhook_json_template(tmp_path: Path, receiver: WebhookReceiver) -> None:
    out = await webhook(
        tmp_path,
        url=receiver.url,
        body={"summary": "{rule} on {group} is {state}", "labels": "{labels}", "count": "{matches}", "fixed": 1},
        headers={"X-Token": "s3cret"},
    )
    await out.write(Batch(LOGS, notifications()[:1]))
    await out.stop()
    assert receiver.received == [
        {"summary": "api_errors on web-1 is ALARM", "labels": {"severity": "critical"}, "count": 2, "fixed": 1}
    ]
    assert receiver.headers[0]["X-Token"] == "s3cret"


async def test_webhook_default_body_is_the_notification(tmp_path: Path, receiver: WebhookReceiver) -> None:
    out = await webhook(tmp_path, url=receiver.url)
    notes = notifications()
    await out.write(Batch(LOGS, notes))
    await out.stop()
    assert [r["id"] for r in receiver.received] == [n["id"] for n in notes]


async def test_slack_and_teams_bodies(tmp_path: Path, receiver: WebhookReceiver) -> None:
    slack = await webhook(tmp_path, url=receiver.url, format="slack", text="{rule} is {state} on {host}")
    teams = await webhook(tmp_path, url=receiver.url, format="teams")
    alarm = notifications()[0]
    await slack.write(Batch(LOGS, [alarm]))
    await teams.write(Batch(LOGS, [alarm]))
    await slack.stop()
    await teams.stop()
    slack_body, teams_body = receiver.received
    assert slack_body["text"] == "api_errors is ALARM on node-1"
    fields = {f["title"]: f["value"] for f in slack_body["attachments"][0]["fields"]}
    assert fields["host"] == "web-1" and fields["severity"] == "critical"
    assert slack_body["attachments"][0]["color"] == "danger"
    assert teams_body["@type"] == "MessageCard" and teams_body["title"] == alarm["message"]
    facts = {f["name"]: f["value"] for f in teams_body["sections"][0]["facts"]}
    assert facts["Rule"] == "api_errors" and facts["State"] == "ALARM"


@pytest.mark.parametrize(("status", "error"), [(500, RetryableError), (429, RetryableError), (400, PermanentError)])
async def test_webhook_classifies_answers(tmp_path: Path, status: int, error: type[Exception]) -> None:
    r = WebhookReceiver(status=status).start()
    try:
        out = await webhook(tmp_path, url=r.url)
        with pytest.raises(error):
            await out.write(Batch(LOGS, notifications()[:1]))
        await out.stop()
    finally:
        r.stop()


async def test_webhook_unreachable_is_retryable_and_hides_the_url(tmp_path: Path) -> None:
    from collector.testing import free_port

    out = await webhook(tmp_path, url=f"http://127.0.0.1:{free_port()}/T000/SECRET")
    with pytest.raises(RetryableError) as caught:
        await out.write(Batch(LOGS, notifications()[:1]))
    assert "SECRET" not in str(caught.value)
    await out.stop()


# ------------------------------------------------------------------ SNS against moto


def sns_topic_with_queue(moto: MotoServer, name: str = "alerts") -> tuple[str, str]:
    sns, sqs = moto.client("sns"), moto.client("sqs")
    topic = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-q")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return topic, queue_url


def read_queue(moto: MotoServer, queue_url: str, count: int) -> list[dict[str, Any]]:
    sqs = moto.client("sqs")
    got: list[dict[str, Any]] = []
    for _ in range(20):
        answer = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        )
        got.extend(answer.get("Messages", []))
        if len(got) >= count:
            break
    return got


async def test_sns_publishes_through_moto_and_arrives_in_sqs(tmp_path: Path, moto: MotoServer) -> None:
    topic, queue_url = sns_topic_with_queue(moto)
    config = SnsConfig.model_validate(
        {"type": "sns", "inputs": ["notes"], "topic_arn": topic, "format": "json",
         "endpoint_url": moto.endpoint_url, "region": moto.region}
    )  # fmt: skip
    out = SnsOutput(config, component_context("sns", tmp_path))
    await out.start()
    notes = notifications()
    result = await out.send(Batch(LOGS, notes))
    await out.stop()
    assert result.outcome is Outcome.OK and result.per_record is None
    messages = read_queue(moto, queue_url, 2)
    bodies = sorted((json.loads(m["Body"]) for m in messages), key=lambda b: b["id"])
    assert [b["id"] for b in bodies] == sorted(n["id"] for n in notes)
    attributes = {m["MessageAttributes"]["event"]["StringValue"] for m in messages}
    assert attributes == {"alarm", "resolved"}
    assert out.counters()["published"] == 2


async def test_sns_text_message_and_subject(tmp_path: Path, moto: MotoServer) -> None:
    topic, queue_url = sns_topic_with_queue(moto, "text-alerts")
    config = SnsConfig.model_validate(
        {"type": "sns", "inputs": ["notes"], "topic_arn": topic, "message": "{rule} {state} {group}",
         "subject": "[{state}] {rule}", "endpoint_url": moto.endpoint_url, "region": moto.region}
    )  # fmt: skip
    out = SnsOutput(config, component_context("sns", tmp_path))
    entry = out.entry(0, notifications()[0])
    assert entry["Subject"] == "[ALARM] api_errors" and entry["Message"] == "api_errors ALARM web-1"
    await out.write(Batch(LOGS, notifications()[:1]))
    await out.stop()
    assert [m["Body"] for m in read_queue(moto, queue_url, 1)] == ["api_errors ALARM web-1"]


async def test_sns_missing_topic_is_permanent(tmp_path: Path, moto: MotoServer) -> None:
    config = SnsConfig.model_validate(
        {"type": "sns", "inputs": ["notes"], "topic_arn": f"arn:aws:sns:{moto.region}:123456789012:nope",
         "endpoint_url": moto.endpoint_url, "region": moto.region}
    )  # fmt: skip
    out = SnsOutput(config, component_context("sns", tmp_path))
    result = await out.send(Batch(LOGS, notifications()[:1]))
    await out.stop()
    assert result.outcome is Outcome.DROP


def test_sns_fifo_entries_carry_group_and_deduplication() -> None:
    config = SnsConfig.model_validate(
        {"type": "sns", "inputs": ["notes"], "topic_arn": "arn:aws:sns:eu-west-1:123456789012:alerts.fifo"}
    )
    out = SnsOutput(config, component_context("sns", Path("/nonexistent")))
    first, again = out.entry(0, notifications()[0]), out.entry(1, notifications()[0])
    assert first["MessageGroupId"] == "api_errors"
    assert first["MessageDeduplicationId"] == again["MessageDeduplicationId"]  # same notification id


def test_sns_subject_is_ascii_and_bounded() -> None:
    from collector_plugins.outputs.sns.output import subject_of

    assert subject_of("é\nline " + "x" * 200) == ("? line " + "x" * 200)[:100]


# ------------------------------------------------------------------ exec


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "hook.py"
    path.write_text(body)
    return str(path)


async def test_exec_gets_json_on_stdin_and_rendered_arguments(tmp_path: Path) -> None:
    out_file = tmp_path / "got.jsonl"
    hook = script(
        tmp_path,
        "import sys, json\n"
        "got = {'argv': sys.argv[1:], 'note': json.load(sys.stdin)}\n"
        f"open({str(out_file)!r}, 'a').write(json.dumps(got) + '\\n')\n",
    )
    config = ExecConfig.model_validate(
        {
            "type": "exec",
            "inputs": ["notes"],
            "command": [sys.executable, hook, "--rule", "{rule}", "{state}; rm -rf /"],
        }
    )
    out = ExecOutput(config, component_context("hook", tmp_path))
    notes = notifications()
    await out.write(Batch(LOGS, notes))
    lines = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert [x["argv"] for x in lines] == [
        ["--rule", "api_errors", "ALARM; rm -rf /"],
        ["--rule", "api_errors", "OK; rm -rf /"],
    ]
    assert [x["note"]["id"] for x in lines] == [n["id"] for n in notes]


async def test_exec_failures_are_classified(tmp_path: Path) -> None:
    failing = script(tmp_path, "import sys\nsys.stdin.read()\nprint('no pager today')\nsys.exit(int(sys.argv[1]))\n")
    base = {"type": "exec", "inputs": ["notes"], "permanent_exit_codes": [2]}
    retry = ExecOutput(
        ExecConfig.model_validate({**base, "command": [sys.executable, failing, "1"]}), component_context("a", tmp_path)
    )
    with pytest.raises(RetryableError, match="exited 1"):
        await retry.write(Batch(LOGS, notifications()[:1]))
    permanent = ExecOutput(
        ExecConfig.model_validate({**base, "command": [sys.executable, failing, "2"]}), component_context("b", tmp_path)
    )
    with pytest.raises(PermanentError, match="exited 2"):
        await permanent.write(Batch(LOGS, notifications()[:1]))
    missing = ExecOutput(
        ExecConfig.model_validate({**base, "command": [str(tmp_path / "nope")]}), component_context("c", tmp_path)
    )
    with pytest.raises(RetryableError, match="cannot start"):
        await missing.write(Batch(LOGS, notifications()[:1]))


async def test_exec_timeout_kills_the_command(tmp_path: Path) -> None:
    sleeper = script(tmp_path, "import time\ntime.sleep(30)\n")
    config = ExecConfig.model_validate(
        {"type": "exec", "inputs": ["notes"], "command": [sys.executable, sleeper], "timeout": "300ms"}
    )
    out = ExecOutput(config, component_context("hook", tmp_path))
    with pytest.raises(RetryableError, match="did not finish"):
        await out.write(Batch(LOGS, notifications()[:1]))
    assert out.counters()["timeouts"] == 1
