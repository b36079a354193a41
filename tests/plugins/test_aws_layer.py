"""The AWS layer's clients and error classification, against moto through the fault-injecting proxy."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError, NoCredentialsError, ParamValidationError
from pydantic import ValidationError

from collector.api import ComponentContext
from collector.log import RepeatLimiter
from collector.send_result import Outcome
from collector_plugins.common.aws.errors import classify_aws_error, error_code
from collector_plugins.common.aws.session import USER_AGENT, AwsClients
from collector_plugins.common.aws.settings import AwsSettings
from tests.aws_faults import FaultProxy
from tests.moto import MotoServer
from tests.plugins.receiver_support import self_signed_cert


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.endpoint_url) as p:
        yield p


@pytest.fixture
async def clients(proxy: FaultProxy, ctx: ComponentContext) -> AwsClients:
    clients = AwsClients(AwsSettings(region="eu-west-1", endpoint_url=proxy.url), ctx)
    yield clients
    await clients.close()


async def failure(clients: AwsClients, **kwargs: object) -> BaseException:
    logs = await clients.client("logs")
    with pytest.raises(Exception) as info:
        await logs.put_log_events(
            logGroupName="g", logStreamName="s", logEvents=[{"timestamp": 1, "message": "m"}], **kwargs
        )
    return info.value


# -- clients -------------------------------------------------------------------------------------------


async def test_one_client_per_service_reused_and_user_agent_names_the_collector(
    clients: AwsClients, proxy: FaultProxy
) -> None:
    logs = await clients.client("logs")
    assert await clients.client("logs") is logs
    assert await clients.client("logs", parameter_validation=False) is not logs
    await logs.describe_log_groups()
    assert USER_AGENT in proxy.requests[-1].headers["user-agent"]
    assert USER_AGENT.startswith("node-collector/")
    await clients.close()
    await clients.close()  # idempotent


async def test_botocore_does_not_retry_the_driver_does(clients: AwsClients, proxy: FaultProxy) -> None:
    proxy.fail_next(1, "throttle", match="DescribeLogGroups")
    logs = await clients.client("logs")
    with pytest.raises(ClientError):
        await logs.describe_log_groups()
    assert proxy.count("DescribeLogGroups") == 1


async def test_proxy_setting_sends_requests_through_the_proxy(moto: MotoServer, ctx: ComponentContext) -> None:
    with FaultProxy(moto.endpoint_url) as forward:
        clients = AwsClients(AwsSettings(region="eu-west-1", endpoint_url=moto.endpoint_url, proxy=forward.url), ctx)
        try:
            await (await clients.client("logs")).describe_log_groups()
        finally:
            await clients.close()
        assert forward.count("DescribeLogGroups") == 1
        assert forward.requests[0].headers.get("x-forwarded-by-proxy") == "1"


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    cert, key = self_signed_cert(tmp_path_factory.mktemp("tls"))
    return str(cert), str(key)


async def test_custom_ca_bundle(moto: MotoServer, ctx: ComponentContext, self_signed: tuple[str, str]) -> None:
    cert, key = self_signed
    with FaultProxy(moto.endpoint_url, certfile=cert, keyfile=key) as tls:
        untrusted = AwsClients(AwsSettings(region="eu-west-1", endpoint_url=tls.url), ctx)
        trusted = AwsClients(AwsSettings(region="eu-west-1", endpoint_url=tls.url, ca_bundle=cert), ctx)
        try:
            with pytest.raises(Exception, match=r"(?i)certificate|ssl"):
                await (await untrusted.client("logs")).describe_log_groups()
            await (await trusted.client("logs")).describe_log_groups()
        finally:
            await untrusted.close()
            await trusted.close()
        assert tls.count("DescribeLogGroups") == 1  # only the trusted client got through


def test_settings_validation() -> None:
    for bad in (
        {"region": "Europe"},
        {"endpoint_url": "localhost:4566"},
        {"role_arn": "arn:aws:iam::123:user/x"},
        {"role_session_name": "has space"},
        {"proxy": "socks5://p:1080"},
    ):
        with pytest.raises(ValidationError):
            AwsSettings.model_validate(bad)
    ok = AwsSettings.model_validate({"connect_timeout": "2s", "read_timeout": "1m", "role_arn": None})
    assert (ok.connect_timeout, ok.read_timeout) == (2.0, 60.0)


# -- classification --------------------------------------------------------------------------------------

LOG = logging.getLogger("test.aws.errors")


async def test_throttling_is_retryable(clients: AwsClients, proxy: FaultProxy) -> None:
    proxy.fail_next(1, "throttle", match="PutLogEvents", retry_after=3)
    exc = await failure(clients)
    assert error_code(exc) == "ThrottlingException"
    result = classify_aws_error(exc, action="logs:PutLogEvents", log=LOG)
    assert result.outcome is Outcome.RETRY and result.retry_after == 3.0
    assert "ThrottlingException" in result.reason


@pytest.mark.parametrize("kind", ["5xx", "reset"])
async def test_server_errors_and_broken_connections_are_retryable(
    clients: AwsClients, proxy: FaultProxy, kind: str
) -> None:
    proxy.fail_next(1, kind, match="PutLogEvents")  # type: ignore[arg-type]
    exc = await failure(clients)
    assert classify_aws_error(exc, action="logs:PutLogEvents", log=LOG).outcome is Outcome.RETRY


async def test_validation_errors_are_permanent(clients: AwsClients, moto: MotoServer) -> None:
    moto.client("logs").create_log_group(logGroupName="g")
    moto.client("logs").create_log_stream(logGroupName="g", logStreamName="s")
    logs = await clients.client("logs")
    with pytest.raises(ClientError) as info:  # moto enforces the order rule
        await logs.put_log_events(
            logGroupName="g",
            logStreamName="s",
            logEvents=[{"timestamp": 2000, "message": "b"}, {"timestamp": 1000, "message": "a"}],
        )
    result = classify_aws_error(info.value, action="logs:PutLogEvents", log=LOG)
    assert result.outcome is Outcome.DROP and "InvalidParameterException" in result.reason
    local = classify_aws_error(ParamValidationError(report="bad"), action="logs:PutLogEvents", log=LOG)
    assert local.outcome is Outcome.DROP


async def test_access_denied_names_the_missing_permission_once(
    clients: AwsClients, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:g:log-stream:s"
    message = (
        "User: arn:aws:sts::123456789012:assumed-role/node/i-1 is not authorized to perform: logs:PutLogEvents "
        f"on resource: {arn} because no identity-based policy allows the logs:PutLogEvents action"
    )
    proxy.fail_next(3, "error", code="AccessDeniedException", message=message, match="PutLogEvents")
    limiter = RepeatLimiter(60)
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        for _ in range(3):
            exc = await failure(clients)
            result = classify_aws_error(exc, action="logs:PutLogEvents", log=LOG, limiter=limiter)
            assert result.outcome is Outcome.DROP
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"missing IAM permission logs:PutLogEvents on {arn}"]
    assert result.reason == f"access_denied: missing IAM permission logs:PutLogEvents on {arn}"


async def test_access_denied_without_a_resource_in_the_message_uses_the_given_one(
    clients: AwsClients, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.fail_next(1, "error", code="AccessDeniedException", message="Access denied", match="PutLogEvents")
    exc = await failure(clients)
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        result = classify_aws_error(
            exc,
            action="logs:CreateLogGroup",
            log=LOG,
            resource="arn:aws:logs:eu-west-1:*:log-group:g:*",
            limiter=RepeatLimiter(60),
        )
    assert result.outcome is Outcome.DROP
    assert [r.getMessage() for r in caplog.records] == [
        "missing IAM permission logs:CreateLogGroup on arn:aws:logs:eu-west-1:*:log-group:g:*"
    ]


async def test_bad_credentials_are_permanent_missing_ones_retryable(
    clients: AwsClients, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.fail_next(1, "error", code="UnrecognizedClientException", message="The security token is invalid")
    exc = await failure(clients)
    with caplog.at_level(logging.ERROR, logger=LOG.name):
        bad = classify_aws_error(exc, action="logs:PutLogEvents", log=LOG, limiter=RepeatLimiter(60))
        missing = classify_aws_error(
            NoCredentialsError(), action="logs:PutLogEvents", log=LOG, limiter=RepeatLimiter(60)
        )
    assert bad.outcome is Outcome.DROP and bad.reason.startswith("invalid_credentials")
    assert missing.outcome is Outcome.RETRY
    messages = " | ".join(r.getMessage() for r in caplog.records)
    assert "rejected the credentials" in messages and "no usable AWS credentials" in messages


async def test_expired_token_is_retryable(clients: AwsClients, proxy: FaultProxy) -> None:
    proxy.fail_next(1, "error", code="ExpiredTokenException", message="expired")
    exc = await failure(clients)
    assert classify_aws_error(exc, action="logs:PutLogEvents", log=LOG).outcome is Outcome.RETRY


def test_setup_errors_keep_the_records() -> None:
    from botocore.exceptions import NoRegionError, ProfileNotFound

    for exc in (NoRegionError(), ProfileNotFound(profile="nope")):
        assert classify_aws_error(exc, action="logs:PutLogEvents", log=LOG).outcome is Outcome.RETRY


def test_unknown_errors_without_status_are_retryable() -> None:
    assert classify_aws_error(TimeoutError(), action="x:Y", log=LOG).outcome is Outcome.RETRY
    assert classify_aws_error(ConnectionResetError(), action="x:Y", log=LOG).outcome is Outcome.RETRY
    assert error_code(ValueError()) is None
