"""Real peers for the contract's lifecycle test.

An output whose README example talks to AWS runs that example against the
test session's moto server: the example's `endpoint_url` and `region` are
replaced by the server's, and the resources the example names (a stream, a
bucket) are created first, as an operator would have created them. Nothing
leaves loopback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.moto import MotoServer


def _firehose(moto: MotoServer, body: dict[str, Any]) -> None:
    moto.client("s3").create_bucket(
        Bucket="contract-firehose", CreateBucketConfiguration={"LocationConstraint": moto.region}
    )
    moto.client("firehose").create_delivery_stream(
        DeliveryStreamName=body["delivery_stream"],
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": "arn:aws:s3:::contract-firehose",
        },
    )


def _kinesis(moto: MotoServer, body: dict[str, Any]) -> None:
    moto.client("kinesis").create_stream(StreamName=body["stream"], ShardCount=1)


def _s3(moto: MotoServer, body: dict[str, Any]) -> None:
    moto.client("s3").create_bucket(
        Bucket=body["bucket"], CreateBucketConfiguration={"LocationConstraint": moto.region}
    )


def _nothing(moto: MotoServer, body: dict[str, Any]) -> None:
    """The output creates what it needs itself (log groups and streams), or needs nothing (X-Ray)."""


AWS_PEERS: dict[str, Callable[[MotoServer, dict[str, Any]], None]] = {
    "firehose": _firehose,
    "kinesis": _kinesis,
    "s3": _s3,
    "cloudwatch_logs": _nothing,
    "cloudwatch_metrics": _nothing,
    "xray": _nothing,
}


def against_moto(type_name: str, body: dict[str, Any], moto: MotoServer) -> dict[str, Any]:
    """The example `body`, pointed at `moto` with its resources created."""
    AWS_PEERS[type_name](moto, body)
    return {**body, "endpoint_url": moto.endpoint_url, "region": moto.region}


# Outputs that need a local receiver (not AWS): a function starting one for the example `body` and returning the
# body pointed at it and a function that stops it. Nothing leaves loopback.
def _otlp_receiver(body: dict[str, Any]) -> tuple[dict[str, Any], Callable[[], None]]:
    from tests.plugins.otlp_receiver import ThreadedReceiver

    receiver = ThreadedReceiver()
    endpoint = receiver.start(body.get("protocol", "http"))
    return {**body, "endpoint": endpoint}, receiver.stop


LOCAL_PEERS: dict[str, Callable[[dict[str, Any]], tuple[dict[str, Any], Callable[[], None]]]] = {
    "otlp": _otlp_receiver,
}


def _kafka(request: Any, body: dict[str, Any]) -> dict[str, Any]:
    broker = request.getfixturevalue("kafka_broker")
    return {**body, "bootstrap_servers": [broker.bootstrap], "sasl": None, "tls": None}


# Outputs whose README example names a non-AWS peer: the example, pointed at a real one the tests run.
OTHER_PEERS: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
    "kafka": _kafka,
}


def _forward(request: Any, body: dict[str, Any]) -> dict[str, Any]:
    from tests.forward_sink import ForwardSink

    sink = ForwardSink().__enter__()
    request.addfinalizer(lambda: sink.__exit__(None, None, None))
    return {**body, "servers": [sink.address], "tls": None, "shared_key": None}


OTHER_PEERS["forward"] = _forward
