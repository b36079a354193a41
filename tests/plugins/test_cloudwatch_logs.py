"""The cloudwatch_logs output against the moto server: names, creation, rules, rejections, EMF, failures."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from collector.api import ComponentContext
from collector.events import Batch
from collector.send_result import Outcome, SendResult
from collector_plugins.outputs.cloudwatch_logs import CloudWatchLogsConfig, CloudWatchLogsOutput
from tests.aws_faults import FaultProxy
from tests.moto import MotoServer


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.endpoint_url) as p:
        yield p


@pytest.fixture
async def make(proxy: FaultProxy, ctx: ComponentContext) -> AsyncIterator[Any]:
    """A factory of started outputs writing to moto through the proxy; all stopped at the end."""
    outputs: list[CloudWatchLogsOutput] = []

    async def make(**options: Any) -> CloudWatchLogsOutput:
        body = {"type": "cloudwatch_logs", "inputs": ["app"], "region": "eu-west-1", "endpoint_url": proxy.url}
        body.update(options)
        output = CloudWatchLogsOutput(CloudWatchLogsConfig.model_validate(body), ctx)
        outputs.append(output)
        await output.start()
        return output

    yield make
    for output in outputs:
        await output.stop()


def read(moto: MotoServer, group: str, stream: str) -> list[str]:
    events = moto.client("logs").get_log_events(logGroupName=group, logStreamName=stream, startFromHead=True)
    return [e["message"] for e in events["events"]]


def lines(n: int, now: float | None = None, **fields: Any) -> list[dict[str, Any]]:
    now = time.time() if now is None else now
    return [{"timestamp": now - n + i, "message": f"line {i}", **fields} for i in range(n)]


async def test_creates_group_and_stream_and_delivers_in_order(make: Any, moto: MotoServer) -> None:
    output = await make(log_group="/app/{host}", log_stream="{host}-main", retention_days=14, tags={"team": "core"})
    result = await output.send(Batch("logs", lines(50)))
    assert result == SendResult.ok()
    assert read(moto, "/app/testhost", "testhost-main") == [f"line {i}" for i in range(50)]
    group = moto.client("logs").describe_log_groups(logGroupNamePrefix="/app/")["logGroups"][0]
    assert group["retentionInDays"] == 14
    arn = group["arn"].removesuffix(":*")
    assert moto.client("logs").list_tags_for_resource(resourceArn=arn)["tags"] == {"team": "core"}
    assert output.counters()["groups_created"] == 1 and output.counters()["streams_created"] == 1
    # Next batch: no creation calls any more.
    await output.send(Batch("logs", lines(3)))
    assert output.counters()["groups_created"] == 1


async def test_new_groups_get_the_kms_key_and_class(make: Any, proxy: FaultProxy) -> None:
    import json

    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    output = await make(log_group="/kms", log_stream="s", kms_key_id=key, log_group_class="INFREQUENT_ACCESS")
    await output.send(Batch("logs", lines(1)))
    create = next(r for r in proxy.requests if r.operation == "CreateLogGroup")
    assert json.loads(create.body) == {"logGroupName": "/kms", "kmsKeyId": key, "logGroupClass": "INFREQUENT_ACCESS"}


async def test_existing_group_and_stream_are_used_as_they_are(make: Any, moto: MotoServer, proxy: FaultProxy) -> None:
    moto.client("logs").create_log_group(logGroupName="/pre")
    moto.client("logs").create_log_stream(logGroupName="/pre", logStreamName="s")
    output = await make(log_group="/pre", log_stream="s", retention_days=7)
    await output.send(Batch("logs", lines(2)))
    assert [r.operation for r in proxy.requests] == ["PutLogEvents"]
    assert "retentionInDays" not in moto.client("logs").describe_log_groups()["logGroups"][0]


async def test_templates_route_by_record_fields_and_dates(make: Any, moto: MotoServer) -> None:
    output = await make(log_group="/eks/{k8s.namespace}", log_stream="{container_name}/{%Y}-{%m}-{%d}")
    now = time.time()
    records = [
        {"timestamp": now, "message": "a1", "k8s": {"namespace": "prod"}, "container_name": "web"},
        {"timestamp": now, "message": "b1", "k8s": {"namespace": "dev"}, "container_name": "web"},
        {"timestamp": now + 0.001, "message": "a2", "k8s": {"namespace": "prod"}, "container_name": "web"},
        {"timestamp": now, "message": "c1", "k8s": {"namespace": "prod"}, "container_name": "db:primary*"},
        {"timestamp": now, "message": "no fields"},
    ]
    assert (await output.send(Batch("logs", records))).outcome is Outcome.OK
    date = time.strftime("%Y-%m-%d", time.gmtime(now))
    assert read(moto, "/eks/prod", f"web/{date}") == ["a1", "a2"]
    assert read(moto, "/eks/dev", f"web/{date}") == ["b1"]
    assert read(moto, "/eks/prod", f"db_primary_/{date}") == ["c1"]  # ':' and '*' are not allowed in streams
    assert read(moto, "/eks/unknown", f"unknown/{date}") == ["no fields"]


async def test_invalid_group_characters_are_replaced(make: Any, moto: MotoServer) -> None:
    output = await make(log_group="/app/{service}", log_stream="s")
    await output.send(Batch("logs", lines(1, service="billing api:v2")))
    assert read(moto, "/app/billing_api_v2", "s") == ["line 0"]


async def test_names_from_odd_field_values_stay_valid(make: Any, moto: MotoServer) -> None:
    output = await make(log_group="/odd", log_stream="{pod}")
    records = [
        {"timestamp": time.time(), "message": "surrogate", "pod": "bad\udcff"},
        {"timestamp": time.time(), "message": "long", "pod": "p" * 600},
    ]
    assert (await output.send(Batch("logs", records))).outcome is Outcome.OK
    assert read(moto, "/odd", "bad?") == ["surrogate"]
    assert read(moto, "/odd", "p" * 512) == ["long"]


async def test_deleted_group_and_stream_are_recreated(make: Any, moto: MotoServer) -> None:
    output = await make(log_group="/recreate", log_stream="s")
    await output.send(Batch("logs", lines(1)))
    moto.client("logs").delete_log_stream(logGroupName="/recreate", logStreamName="s")
    assert (await output.send(Batch("logs", lines(1)))).outcome is Outcome.OK
    moto.client("logs").delete_log_group(logGroupName="/recreate")
    assert (await output.send(Batch("logs", [{"timestamp": time.time(), "message": "after"}]))).outcome is Outcome.OK
    assert read(moto, "/recreate", "s") == ["after"]
    assert output.counters()["groups_created"] == 2 and output.counters()["streams_created"] == 3


async def test_missing_group_is_not_created_when_told_not_to(make: Any) -> None:
    output = await make(log_group="/absent", log_stream="s", create_log_group=False)
    result = await output.send(Batch("logs", lines(2)))
    assert result.outcome is Outcome.DROP and "create_log_group is false" in result.reason


async def test_unsorted_records_arrive_in_time_order(make: Any, moto: MotoServer) -> None:
    output = await make(log_group="/sort", log_stream="s")
    now = time.time()
    records = [{"timestamp": now + d, "message": str(d)} for d in (3, 1, 2, 0, 1)]
    assert (await output.send(Batch("logs", records))).outcome is Outcome.OK
    assert read(moto, "/sort", "s") == ["0", "1", "1", "2", "3"]


async def test_long_message_is_split_into_parts_readable_in_order(make: Any, moto: MotoServer) -> None:
    output = await make(log_group="/big", log_stream="s", max_event_bytes="4KiB")
    text = "0123456789" * 1000  # 10,000 bytes
    assert (await output.send(Batch("logs", [{"timestamp": time.time(), "message": text}]))).outcome is Outcome.OK
    parts = read(moto, "/big", "s")
    assert len(parts) == 3 and parts[0].startswith("[collector: part 1/3] ")
    assert "".join(p.split("] ", 1)[1] for p in parts) == text
    assert output.counters()["split_records"] == 1


async def test_too_old_and_too_new_events_become_dead_letters_the_rest_is_delivered(
    make: Any, moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    output = await make(log_group="/window", log_stream="s")
    now = time.time()
    records = [
        {"timestamp": now + 3 * 3600, "message": "future 1"},
        {"timestamp": now - 15 * 86400, "message": "ancient"},
        {"timestamp": now, "message": "fine"},
        {"timestamp": now + 4 * 3600, "message": "future 2"},
    ]
    with caplog.at_level(logging.WARNING):
        result = await output.send(Batch("logs", records))
    assert result.per_record == [Outcome.DROP, Outcome.DROP, Outcome.OK, Outcome.DROP]
    assert result.record_reasons is not None
    assert [r.split(":")[0] for r in result.record_reasons] == [
        "rejected_too_new",
        "rejected_too_old",
        "",
        "rejected_too_new",
    ]
    assert read(moto, "/window", "s") == ["fine"]
    counters = output.counters()
    assert (counters["rejected_too_old"], counters["rejected_too_new"]) == (1, 2)
    assert any("refused events outside its time window" in r.getMessage() for r in caplog.records)


async def test_emf_documents_carry_the_extraction_header_plain_lines_do_not(
    make: Any, moto: MotoServer, proxy: FaultProxy
) -> None:
    output = await make(log_group="/emf", log_stream="s")
    now = time.time()
    emf = (
        '{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"App","Dimensions":[[]],'
        '"Metrics":[{"Name":"n"}]}]},"n":1}'
    )
    records = [
        {"timestamp": now, "message": "plain"},
        {"timestamp": now + 0.001, "message": emf, "_emf": True},
        {"timestamp": now + 0.002, "message": "not marked: only True marks", "_emf": "yes"},
    ]
    assert (await output.send(Batch("logs", records))).outcome is Outcome.OK
    puts = [r for r in proxy.requests if r.operation == "PutLogEvents" and r.status == 200]
    headers = sorted((b'"plain"' in r.body, r.headers.get("x-amzn-logs-format")) for r in puts)
    assert headers == [(False, "json/emf"), (True, None)]
    assert read(moto, "/emf", "s") == ["plain", emf, "not marked: only True marks"]


async def test_emf_documents_are_sent_verbatim_even_with_the_json_codec(make: Any, moto: MotoServer) -> None:
    output = await make(log_group="/emf-json", log_stream="s", codec="json")
    now = time.time()
    records = [{"timestamp": now, "message": '{"_aws":{}}', "_emf": True}, {"timestamp": now, "message": "p"}]
    await output.send(Batch("logs", records))
    assert sorted(read(moto, "/emf-json", "s")) == sorted(['{"_aws":{}}', f'{{"timestamp":{now},"message":"p"}}'])


async def test_emf_option_marks_every_request(make: Any, proxy: FaultProxy) -> None:
    output = await make(log_group="/emf-all", log_stream="s", emf=True)
    await output.send(Batch("logs", lines(2)))
    puts = [r for r in proxy.requests if r.operation == "PutLogEvents"]
    assert puts and all(r.headers.get("x-amzn-logs-format") == "json/emf" for r in puts)


async def test_throttling_stops_the_send_and_hands_back_only_what_was_not_sent(
    make: Any, moto: MotoServer, proxy: FaultProxy
) -> None:
    output = await make(log_group="/t", log_stream="{app}")
    moto.client("logs").create_log_group(logGroupName="/t")
    for app in ("a", "b", "c"):
        moto.client("logs").create_log_stream(logGroupName="/t", logStreamName=app)
    now = time.time()
    records = [{"timestamp": now, "message": f"{app}{i}", "app": app} for app in "abc" for i in range(2)]
    delivered = {"n": 0}

    def second_put(request: Any) -> bool:
        if request.operation != "PutLogEvents":
            return False
        delivered["n"] += 1
        return delivered["n"] == 2

    proxy.fail_next(1, "throttle", match=second_put, retry_after=2)
    result = await output.send(Batch("logs", records))
    assert result.per_record == [Outcome.OK] * 2 + [Outcome.RETRY] * 4
    assert result.retry_after == 2.0
    assert proxy.count("PutLogEvents") == 2  # nothing sent after the throttle
    again = await output.send(Batch("logs", records[2:]))
    assert again.outcome is Outcome.OK
    assert read(moto, "/t", "a") == ["a0", "a1"] and read(moto, "/t", "c") == ["c0", "c1"]


async def test_server_error_is_retryable_for_the_whole_batch(make: Any, proxy: FaultProxy) -> None:
    output = await make(log_group="/five", log_stream="s")
    await output.send(Batch("logs", lines(1)))
    proxy.fail_next(1, "5xx", match="PutLogEvents")
    result = await output.send(Batch("logs", lines(3)))
    assert result.outcome is Outcome.RETRY and result.per_record is None


async def test_missing_permission_is_logged_once_and_records_dead_lettered(
    make: Any, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    output = await make(log_group="/denied", log_stream="s")
    proxy.fail_next(5, "error", code="AccessDeniedException", message="not authorized", match="CreateLogGroup")
    with caplog.at_level(logging.ERROR):
        for _ in range(3):
            result = await output.send(Batch("logs", lines(2)))
            assert result.outcome is Outcome.DROP
    assert "missing IAM permission logs:CreateLogGroup on arn:aws:logs:eu-west-1:*:log-group:/denied:*" in result.reason
    lines_logged = [r.getMessage() for r in caplog.records if "missing IAM permission" in r.getMessage()]
    assert lines_logged == [
        "missing IAM permission logs:CreateLogGroup on arn:aws:logs:eu-west-1:*:log-group:/denied:*"
    ]


async def test_put_denied_names_logs_put_log_events(make: Any, moto: MotoServer, proxy: FaultProxy) -> None:
    moto.client("logs").create_log_group(logGroupName="/ro")
    moto.client("logs").create_log_stream(logGroupName="/ro", logStreamName="s")
    output = await make(log_group="/ro", log_stream="s")
    proxy.fail_next(1, "error", code="AccessDeniedException", message="denied", match="PutLogEvents")
    result = await output.send(Batch("logs", lines(1)))
    assert result.reason == (
        "access_denied: missing IAM permission logs:PutLogEvents on arn:aws:logs:eu-west-1:*:log-group:/ro:log-stream:s"
    )


async def test_empty_messages_are_counted_as_loss(make: Any, moto: MotoServer, ctx: ComponentContext) -> None:
    lost: list[tuple[str, int]] = []
    ctx.loss = lambda reason, n: lost.append((reason, n))
    output = await make(log_group="/empty", log_stream="s")
    result = await output.send(Batch("logs", [{"timestamp": time.time(), "message": m} for m in ("", "x", b"")]))
    assert result.outcome is Outcome.OK
    assert lost == [("empty_message", 2)]
    assert read(moto, "/empty", "s") == ["x"]


async def test_instance_id_without_metadata_renders_as_missing(
    make: Any, moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        output = await make(log_group="/ec2/{instance_id}", log_stream="s", missing_value="no-instance")
    await output.send(Batch("logs", lines(1)))
    assert read(moto, "/ec2/no-instance", "s") == ["line 0"]
    assert any("not available from instance metadata" in r.getMessage() for r in caplog.records)


async def test_write_raises_unless_everything_was_accepted(make: Any, proxy: FaultProxy) -> None:
    from collector.send_result import RetryableError

    output = await make(log_group="/w", log_stream="s")
    await output.write(Batch("logs", lines(1)))
    proxy.fail_next(1, "throttle", match="PutLogEvents")
    with pytest.raises(RetryableError):
        await output.write(Batch("logs", lines(1)))


async def test_request_body_is_the_document_botocore_would_send(make: Any, moto: MotoServer, proxy: FaultProxy) -> None:
    import json

    import botocore.session
    from botocore.serialize import create_serializer

    output = await make(log_group="/body", log_stream="s")
    now = time.time()
    tricky = ['quote " backslash \\ tab \t newline \n', "ünïcödé 日本語 🚀", "\x00\x1f control", "</script>"]
    records = [{"timestamp": now + i / 1000, "message": m} for i, m in enumerate(tricky)]
    assert (await output.send(Batch("logs", records))).outcome is Outcome.OK
    sent = [r for r in proxy.requests if r.operation == "PutLogEvents" and r.status == 200][-1]
    model = botocore.session.get_session().get_service_model("logs")
    params = {
        "logGroupName": "/body",
        "logStreamName": "s",
        "logEvents": [{"timestamp": int((now + i / 1000) * 1000), "message": m} for i, m in enumerate(tricky)],
    }
    reference = create_serializer("json").serialize_to_request(params, model.operation_model("PutLogEvents"))
    assert json.loads(sent.body) == json.loads(reference["body"])
    assert sent.headers["content-type"] == reference["headers"]["Content-Type"]
    assert sent.headers["x-amz-target"] == reference["headers"]["X-Amz-Target"]
    assert read(moto, "/body", "s") == tricky


async def test_botocore_serialises_when_the_protocol_is_not_json_1_1(make: Any, moto: MotoServer) -> None:
    output = await make(log_group="/slow-path", log_stream="s")
    assert output._fast_body  # the logs model today: JSON 1.1
    output._fast_body = False  # what a model with another protocol would select
    assert (await output.send(Batch("logs", lines(3)))).outcome is Outcome.OK
    assert read(moto, "/slow-path", "s") == ["line 0", "line 1", "line 2"]
