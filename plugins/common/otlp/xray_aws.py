"""The `aws` block of an X-Ray document from a span's attributes and its resource (the X-Ray exporter's `aws.go`).

From the span: operation (`aws.operation`, else `rpc.method`), `aws.region`, the request id, the queue url
(`messaging.url` first), table names (`aws.dynamodb.table_names` first), the account. From the resource:
ec2 / ecs / eks / elastic_beanstalk facts, the CloudWatch log groups (`aws.log.group.arns` or `.names`, a list
or `&`-separated), the SDK (`telemetry.sdk.*`). No block when `cloud.provider` names another cloud.
"""

from __future__ import annotations

from typing import Any

# Span attributes the `aws` block consumes (left out of metadata).
AWS_KEYS = frozenset(
    (
        "aws.operation", "rpc.method", "aws.account_id", "aws.region", "aws.request_id", "aws.requestId",
        "aws.queue_url", "aws.queue.url", "aws.table_name", "aws.table.name",
    )
)  # fmt: skip


def _str(value: Any) -> str:
    return value if type(value) is str else ""


def compact(block: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in block.items() if v not in ("", None, [], {})}


def aws_block(attrs: dict[str, Any], facts: dict[str, Any] | None, consumed: set[str]) -> dict[str, Any] | None:
    """The block of one span: its own attributes over the resource's `facts` (None: not AWS, no block)."""
    consumed.update(k for k in AWS_KEYS if k in attrs)
    if facts is None:
        return None
    queue_url = _str(attrs.get("messaging.url")) or _str(attrs.get("aws.queue_url")) or _str(attrs.get("aws.queue.url"))
    table_name = _str(attrs.get("aws.table_name")) or _str(attrs.get("aws.table.name"))
    table_names: list[str] = []
    tables = attrs.get("aws.dynamodb.table_names")
    if type(tables) is str:
        table_name = tables
    elif type(tables) is list:
        names = [t for t in tables if type(t) is str]
        if len(names) == 1:
            table_name = names[0]
        elif len(names) > 1:
            table_name, table_names = "", names
    block = dict(facts)
    span_part = {
        "account_id": _str(attrs.get("aws.account_id")),
        "operation": _str(attrs.get("aws.operation")) or _str(attrs.get("rpc.method")),
        "region": _str(attrs.get("aws.region")),
        "request_id": _str(attrs.get("aws.request_id")) or _str(attrs.get("aws.requestId")),
        "queue_url": queue_url,
        "table_name": table_name,
        "table_names": table_names,
    }
    for key, value in span_part.items():
        if value:
            block[key] = value
    return block or None


def resource_facts(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The resource's part of the `aws` block (the same for every span of the resource); None when the
    resource names another cloud than AWS."""
    provider = resource.get("cloud.provider")
    if provider is not None and provider != "aws":
        return None
    r = resource
    platform = _str(r.get("cloud.platform"))
    block: dict[str, Any] = {"account_id": _str(r.get("cloud.account.id"))}
    host_id = _str(r.get("host.id"))
    if platform == "aws_ec2" or host_id:
        block["ec2"] = compact(
            {
                "instance_id": host_id,
                "availability_zone": _str(r.get("cloud.availability_zone")),
                "instance_size": _str(r.get("host.type")),
                "ami_id": _str(r.get("host.image.id")),
            }
        )
    if platform == "aws_ecs":
        block["ecs"] = compact(
            {
                "container": _str(r.get("container.name")),
                "container_id": _str(r.get("container.id")),
                "availability_zone": _str(r.get("cloud.availability_zone")),
                "container_arn": _str(r.get("aws.ecs.container.arn")),
                "cluster_arn": _str(r.get("aws.ecs.cluster.arn")),
                "task_arn": _str(r.get("aws.ecs.task.arn")),
                "task_family": _str(r.get("aws.ecs.task.family")),
                "launch_type": _str(r.get("aws.ecs.launchtype")),
            }
        )
    cluster = _str(r.get("k8s.cluster.name"))
    if platform == "aws_eks" or cluster:
        block["eks"] = compact(
            {"cluster_name": cluster, "pod": _str(r.get("k8s.pod.name")), "container_id": _str(r.get("container.id"))}
        )
    deployment = _str(r.get("service.instance.id"))
    if platform == "aws_elastic_beanstalk" and deployment:
        block["elastic_beanstalk"] = compact(
            {
                "environment_name": _str(r.get("service.namespace")),
                "deployment_id": int(deployment) if deployment.isdigit() and len(deployment) < 19 else 0,
                "version_label": _str(r.get("service.version")),
            }
        )
    groups = _log_groups(r)
    if groups:
        block["cloudwatch_logs"] = groups
    sdk_name, language = _str(r.get("telemetry.sdk.name")), _str(r.get("telemetry.sdk.language"))
    sdk = f"{sdk_name} for {language}" if sdk_name and language else sdk_name
    xray = compact({"sdk": sdk, "sdk_version": _str(r.get("telemetry.sdk.version"))})
    if xray:
        xray["auto_instrumentation"] = bool(_str(r.get("telemetry.auto.version")))
        block["xray"] = xray
    return compact(block)


def _names(value: Any) -> list[str]:
    if type(value) is str:
        return [v for v in value.split("&") if v]
    if type(value) is list:
        return [v for v in value if type(v) is str and v]
    return []


def _log_groups(resource: dict[str, Any]) -> list[dict[str, str]]:
    arns = _names(resource.get("aws.log.group.arns"))
    if arns:
        return [{"arn": arn, "log_group": arn.split(":")[6] if arn.count(":") >= 6 else arn} for arn in arns]
    return [{"log_group": name} for name in _names(resource.get("aws.log.group.names"))]
