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


def _sns(moto: MotoServer, body: dict[str, Any]) -> None:
    moto.client("sns").create_topic(Name=body["topic_arn"].rsplit(":", 1)[1])


AWS_PEERS: dict[str, Callable[[MotoServer, dict[str, Any]], None]] = {
    "firehose": _firehose,
    "kinesis": _kinesis,
    "s3": _s3,
    "cloudwatch_logs": _nothing,
    "cloudwatch_metrics": _nothing,
    "xray": _nothing,
    "sns": _sns,
}

# Outputs whose README example talks to a local HTTP peer: the example's `url` is replaced by the test's server.
HTTP_PEERS = frozenset({"webhook"})


def against_moto(type_name: str, body: dict[str, Any], moto: MotoServer) -> dict[str, Any]:
    """The example `body`, pointed at `moto` with its resources created."""
    AWS_PEERS[type_name](moto, body)
    return {**body, "endpoint_url": moto.endpoint_url, "region": moto.region}
