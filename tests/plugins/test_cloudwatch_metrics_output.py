"""The `cloudwatch_metrics` output against the moto server: values read back with GetMetricStatistics/Data."""

from __future__ import annotations

import datetime
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from collector.api import ComponentContext, HostFacts
from collector.config import parse_config
from collector.events import METRICS, Batch, Metric
from collector.registry import load_registry
from collector.send_result import Outcome, PermanentError
from collector_plugins.common.cloudwatch_metrics.dimensions import MetadataUnavailable, placeholder
from collector_plugins.common.metrics.distribution import Distribution
from collector_plugins.outputs.cloudwatch_metrics.output import CloudWatchMetricsConfig, CloudWatchMetricsOutput
from tests.aws_faults import FaultProxy
from tests.moto import MotoServer


class FakeImds:
    """IMDSv2 as the EC2 documentation describes it: PUT /latest/api/token, then GETs with the token."""

    def __init__(self, facts: dict[str, str]) -> None:
        self.facts = facts
        self.tokens: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_put("/latest/api/token", self._token)
        app.router.add_get("/latest/meta-data/{path:.*}", self._get)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _token(self, request: web.Request) -> web.Response:
        self.requests.append(("PUT", request.path))
        ttl = request.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return web.Response(status=400)
        token = secrets.token_urlsafe(16)
        self.tokens.add(token)
        return web.Response(text=token, headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl})

    async def _get(self, request: web.Request) -> web.Response:
        self.requests.append(("GET", request.path))
        if request.headers.get("X-aws-ec2-metadata-token") not in self.tokens:
            return web.Response(status=401)  # IMDSv1 (no token) is refused, as on instances requiring v2
        value = self.facts.get(request.match_info["path"])
        return web.Response(text=value) if value is not None else web.Response(status=404)


def make_output(tmp_path: Path, endpoint: str, **options: Any) -> CloudWatchMetricsOutput:
    config = CloudWatchMetricsConfig.model_validate(
        {
            "type": "cloudwatch_metrics",
            "inputs": ["m"],
            "region": "eu-west-1",
            "endpoint_url": endpoint,
            "namespace": "Test",
            **options,
        }
    )
    ctx = ComponentContext("cw", logging.getLogger("test.cloudwatch_metrics"), tmp_path, HostFacts("h"))
    return CloudWatchMetricsOutput(config, ctx)


@pytest.fixture
async def output(tmp_path: Path, moto: MotoServer) -> AsyncIterator[Any]:
    made: list[CloudWatchMetricsOutput] = []

    async def make(**options: Any) -> CloudWatchMetricsOutput:
        out = make_output(tmp_path, options.pop("endpoint", moto.endpoint_url), **options)
        await out.start()
        made.append(out)
        return out

    yield make
    for out in made:
        await out.stop()


def minute() -> float:
    now = datetime.datetime.now(datetime.UTC).timestamp()
    return now // 60 * 60 - 60


def statistics(
    moto: MotoServer,
    name: str,
    start: float,
    dims: dict[str, str] | None = None,
    period: int = 60,
    namespace: str = "Test",
) -> list[dict[str, Any]]:
    response = moto.client("cloudwatch").get_metric_statistics(
        Namespace=namespace,
        MetricName=name,
        Dimensions=[{"Name": k, "Value": v} for k, v in (dims or {}).items()],
        StartTime=datetime.datetime.fromtimestamp(start - 120, datetime.UTC),
        EndTime=datetime.datetime.fromtimestamp(start + 180, datetime.UTC),
        Period=period,
        Statistics=["Sum", "SampleCount", "Minimum", "Maximum", "Average"],
    )
    return sorted(response["Datapoints"], key=lambda p: p["Timestamp"])


async def test_every_type_reads_back(output: Any, moto: MotoServer) -> None:
    out = await output()
    t = minute()
    latency = {
        "values": [10.0, 20.0, 500.0],
        "counts": [5.0, 4.0, 1.0],
        "sum": 630.0,
        "count": 10.0,
        "min": 10.0,
        "max": 500.0,
    }
    batch = Batch(
        METRICS,
        [
            Metric("requests", "counter", 42.0, {"route": "/a"}, t, "Count", 60.0),
            Metric("queue_depth", "gauge", 7.0, {"queue": "q1"}, t, None, 60.0),
            Metric("latency", "distribution", latency, {"route": "/a"}, t, "Milliseconds", 60.0),
            Metric("visitors", "set", ["a", "b", "c"], {}, t, None, 60.0),
        ],
    )
    assert (await out.send(batch)).outcome is Outcome.OK
    assert statistics(moto, "requests", t, {"route": "/a"})[0]["Sum"] == 42.0
    assert statistics(moto, "queue_depth", t, {"queue": "q1"})[0]["Maximum"] == 7.0
    (lat,) = statistics(moto, "latency", t, {"route": "/a"})
    assert (lat["SampleCount"], lat["Sum"], lat["Minimum"], lat["Maximum"]) == (10.0, 630.0, 10.0, 500.0)
    assert lat["Unit"] == "Milliseconds"
    assert statistics(moto, "visitors", t)[0]["Sum"] == 3.0
    data = moto.client("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "r",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "Test",
                        "MetricName": "requests",
                        "Dimensions": [{"Name": "route", "Value": "/a"}],
                    },
                    "Period": 60,
                    "Stat": "Sum",
                },
            }
        ],
        StartTime=datetime.datetime.fromtimestamp(t - 60, datetime.UTC),
        EndTime=datetime.datetime.fromtimestamp(t + 120, datetime.UTC),
    )
    assert data["MetricDataResults"][0]["Values"] == [42.0]
    assert out.counters()["requests"] == 1 and out.counters()["datums"] == 4


async def test_statistic_sets_and_high_resolution(output: Any, moto: MotoServer) -> None:
    out = await output(distribution="statistic_set")
    t = minute()
    points = [Metric("lat", "distribution", [1.0, 2.0, 3.0, 10.0], {}, t + s, None, 10.0) for s in (0, 10, 20)]
    await out.write(Batch(METRICS, points))
    (per_minute,) = statistics(moto, "lat", t)
    assert (per_minute["SampleCount"], per_minute["Sum"], per_minute["Maximum"]) == (12.0, 48.0, 10.0)
    per_10s = statistics(moto, "lat", t, period=10)  # stored at high resolution: 10 s periods are kept apart
    assert [p["SampleCount"] for p in per_10s] == [4.0, 4.0, 4.0]


async def test_invalid_records_are_dead_lettered_alone(output: Any, moto: MotoServer, caplog: Any) -> None:
    out = await output()
    t = minute()
    batch = Batch(
        METRICS,
        [
            Metric("ok", "counter", 1.0, {}, t),
            Metric("bad", "gauge", float("nan"), {}, t),
            Metric("wide", "gauge", 1.0, {f"d{i}": "v" for i in range(31)}, t),
            Metric("ok", "counter", 2.0, {}, t),
        ],
    )
    with caplog.at_level(logging.ERROR, logger="test.cloudwatch_metrics"):
        result = await out.send(batch)
    assert result.per_record == [Outcome.OK, Outcome.DROP, Outcome.DROP, Outcome.OK]
    assert list(result.record_reasons or []) == ["", "invalid_value", "too_many_dimensions", ""]
    assert statistics(moto, "ok", t)[0]["Sum"] == 3.0
    assert out.counters()["invalid_records"] == 2
    assert any("dead-lettered" in r.getMessage() for r in caplog.records)
    with pytest.raises(PermanentError):
        await out.write(batch)


async def test_namespace_from_tag(output: Any, moto: MotoServer) -> None:
    out = await output(namespace_from_tag="namespace")
    t = minute()
    await out.write(
        Batch(
            METRICS,
            [
                Metric("x", "counter", 1.0, {"namespace": "Shop", "route": "/a"}, t),
                Metric("x", "counter", 2.0, {"route": "/a"}, t),
            ],
        )
    )
    assert statistics(moto, "x", t, {"route": "/a"}, namespace="Shop")[0]["Sum"] == 1.0
    assert statistics(moto, "x", t, {"route": "/a"}, namespace="Test")[0]["Sum"] == 2.0


async def test_append_dimensions_from_instance_metadata_and_tags(output: Any, moto: MotoServer) -> None:
    asg = moto.client("autoscaling")
    asg.create_launch_configuration(LaunchConfigurationName="lc", ImageId="ami-12c6146b", InstanceType="t3.micro")
    asg.create_auto_scaling_group(
        AutoScalingGroupName="web-asg",
        LaunchConfigurationName="lc",
        MinSize=1,
        MaxSize=1,
        AvailabilityZones=["eu-west-1a"],
    )
    instance = asg.describe_auto_scaling_instances()["AutoScalingInstances"][0]["InstanceId"]
    imds = FakeImds({"instance-id": instance, "instance-type": "t3.micro", "ami-id": "ami-12c6146b"})
    await imds.start()
    try:
        out = await output(
            metadata_endpoint=imds.url,
            append_dimensions={
                "InstanceId": "{aws:InstanceId}",
                "InstanceType": "{aws:InstanceType}",
                "AutoScalingGroupName": "{aws:AutoScalingGroupName}",
                "Environment": "prod",
            },
        )
    finally:
        await imds.stop()
    assert imds.requests[0] == ("PUT", "/latest/api/token")  # IMDSv2: a token first
    t = minute()
    await out.write(Batch(METRICS, [Metric("cpu", "gauge", 50.0, {"cpu": "total"}, t)]))
    dims = {
        "cpu": "total",
        "InstanceId": instance,
        "InstanceType": "t3.micro",
        "AutoScalingGroupName": "web-asg",
        "Environment": "prod",
    }
    assert statistics(moto, "cpu", t, dims)[0]["Maximum"] == 50.0


async def test_an_instance_outside_a_group_gets_no_group_dimension(tmp_path: Path, moto: MotoServer) -> None:
    imds = FakeImds({"instance-id": "i-0123456789abcdef0"})
    await imds.start()
    out = make_output(
        tmp_path,
        moto.endpoint_url,
        metadata_endpoint=imds.url,
        append_dimensions={"InstanceId": "{aws:InstanceId}", "AutoScalingGroupName": "{aws:AutoScalingGroupName}"},
    )
    try:
        await out.start()
    finally:
        await imds.stop()
    assert out.builder is not None and out.builder.options.append == {"InstanceId": "i-0123456789abcdef0"}
    await out.stop()


async def test_unreachable_metadata_fails_the_start(tmp_path: Path, moto: MotoServer) -> None:
    out = make_output(
        tmp_path,
        moto.endpoint_url,
        metadata_endpoint="http://127.0.0.1:9",
        append_dimensions={"InstanceId": "{aws:InstanceId}"},
    )
    with pytest.raises(MetadataUnavailable):
        await out.start()
    await out.stop()
    # The link-local default is never asked while AWS_EC2_METADATA_DISABLED=true (set for every test).
    default = make_output(tmp_path, moto.endpoint_url, append_dimensions={"InstanceId": "{aws:InstanceId}"})
    with pytest.raises(MetadataUnavailable):
        await default.start()
    await default.stop()


def put_metric_data(request: Any) -> bool:
    """PutMetricData in any protocol: the operation in the path (CBOR) or in the target / action (JSON, query)."""
    return bool(request.path.endswith("/PutMetricData") or request.operation == "PutMetricData")


async def test_server_errors_retry_the_requests_records_only(output: Any, moto: MotoServer) -> None:
    t = minute()
    with FaultProxy(moto.endpoint_url) as proxy:
        out = await output(endpoint=proxy.url)
        proxy.fail_next(1, kind="5xx", match=put_metric_data)

        result = await out.send(Batch(METRICS, [Metric("r", "counter", 1.0, {}, t)]))
        assert result.outcome is Outcome.RETRY
        assert (await out.send(Batch(METRICS, [Metric("r", "counter", 1.0, {}, t)]))).outcome is Outcome.OK
        proxy.fail_next(1, kind="error", status=403, code="AccessDenied", message="no", match=put_metric_data)
        denied = await out.send(Batch(METRICS, [Metric("r", "counter", 1.0, {}, t)]))
    assert statistics(moto, "r", t)[0]["Sum"] == 1.0
    assert denied.outcome is Outcome.DROP
    assert "cloudwatch:PutMetricData" in denied.reason


@pytest.mark.parametrize(
    "options",
    [
        {"namespace": "AWS/EC2"},
        {"namespace": ""},
        {"append_dimensions": {"InstanceId": "{aws:Nope}"}},
        {"append_dimensions": {"Bad": ""}},
        {"append_dimensions": {f"d{i}": "v" for i in range(31)}},
        {"dimensions": ["a"], "drop_dimensions": ["b"]},
        {"storage_resolution": 5},
        {"metadata_endpoint": "169.254.169.254"},
    ],
)
def test_config_errors(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        CloudWatchMetricsConfig.model_validate({"type": "cloudwatch_metrics", "inputs": ["m"], **options})


def test_placeholders_survive_the_config_files_substitution() -> None:
    assert placeholder("{aws:InstanceId}") == placeholder("${aws:InstanceId}") == "InstanceId"
    assert placeholder("i-123") is None
    text = """
inputs: {s: {type: statsd}}
outputs:
  cw:
    type: cloudwatch_metrics
    inputs: [s]
    append_dimensions: {InstanceId: "{aws:InstanceId}", ImageId: "$${aws:ImageId}", Env: "${ENV}"}
"""
    graph = parse_config(text, "c.yaml", load_registry(), environ={"ENV": "prod"}).graph
    dims = graph.components["cw"].config.append_dimensions
    assert dims == {"InstanceId": "{aws:InstanceId}", "ImageId": "${aws:ImageId}", "Env": "prod"}


async def test_a_bucketed_distribution_reads_back_exact_statistics(output: Any, moto: MotoServer) -> None:
    """500 distinct values (more than one datum holds, so the aggregator bucketed them): CloudWatch's
    Sum, SampleCount, Minimum and Maximum are the exact figures, not the buckets'."""
    out = await output()
    t = minute()
    dist = Distribution()  # what the statsd and emf inputs aggregate into
    samples = [float(v) for v in range(0, 1000, 2)]
    dist.add_values(samples)
    assert dist.bucketed
    metric = Metric("lat", "distribution", dist.to_value(), {}, t, "Milliseconds", 60.0)
    assert (await out.send(Batch(METRICS, [metric]))).outcome is Outcome.OK
    (point,) = statistics(moto, "lat", t)
    assert point["SampleCount"] == 500.0
    assert point["Sum"] == pytest.approx(249500.0, rel=1e-12)
    assert (point["Minimum"], point["Maximum"]) == (0.0, 998.0)
