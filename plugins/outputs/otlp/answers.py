"""The OTLP specification's failure rules, as the driver's outcomes (`SendResult`).

From opentelemetry-proto docs/specification.md (v1.x, checked 2026-12-06,
https://github.com/open-telemetry/opentelemetry-proto/blob/main/docs/specification.md):

- OTLP/HTTP ("Failures", "OTLP/HTTP Throttling"): 429, 502, 503 and 504 are retryable; the client honours a
  `Retry-After` header (seconds or an HTTP date). Every other 4xx or 5xx MUST NOT be retried: the data is
  dead-lettered with the status and the server's `google.rpc.Status` message when the body carries one.
- OTLP/gRPC ("Failures", "OTLP/gRPC Throttling"): CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE,
  UNAVAILABLE and DATA_LOSS are retryable; RESOURCE_EXHAUSTED only when the status carries a
  `google.rpc.RetryInfo` (its `retry_delay` is then the wait); every other code is permanent.
- A success with `partial_success.rejected_<items> > 0`: the rejected items MUST NOT be retried and the
  server does not say which they were; the request is a success, and the rejected count is reported as lost
  with the server's `error_message` (the loss ledger, `rejected_by_server`).
"""

from __future__ import annotations

from dataclasses import dataclass

from collector.send_result import SendResult
from collector_plugins.common.http_delivery.client import retry_after_seconds

RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
THROTTLE_HTTP = frozenset({429})
# gRPC status codes by number (grpc/doc/statuscodes.md): what the spec calls retryable.
RETRYABLE_GRPC = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"})
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


@dataclass(frozen=True, slots=True)
class Accepted:
    """A 2xx / OK answer: how many items the server rejected (not to be retried), and why."""

    rejected: int = 0
    message: str = ""


def status_message(body: bytes) -> str:
    """The message of a `google.rpc.Status` protobuf body (what OTLP/HTTP servers send on errors), or ""."""
    if not body:
        return ""
    from google.rpc.status_pb2 import Status

    try:
        status = Status.FromString(body)
    except Exception:  # not a Status: a proxy's HTML page, plain text
        return body[:200].decode("utf-8", "replace").strip()
    return status.message


def http_failure(status: int, retry_after: str | None, body: bytes) -> SendResult:
    """The outcome of a non-2xx OTLP/HTTP answer."""
    message = status_message(body)
    reason = f"HTTP {status}" + (f": {message}" if message else "")
    if status in RETRYABLE_HTTP:
        delay = retry_after_seconds(retry_after)
        if status in THROTTLE_HTTP:
            return SendResult.throttle(reason, delay)
        return SendResult.retry(reason, delay)
    return SendResult.drop(reason)


def retry_info_delay(details: bytes | None) -> float | None:
    """The `RetryInfo.retry_delay` in a `grpc-status-details-bin` trailer, in seconds; None when there is none."""
    if not details:
        return None
    from google.rpc.error_details_pb2 import RetryInfo
    from google.rpc.status_pb2 import Status

    try:
        status = Status.FromString(details)
    except Exception:
        return None
    for detail in status.details:
        if detail.type_url == RETRY_INFO_TYPE:
            info = RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def grpc_failure(code: str, message: str, details: bytes | None) -> SendResult:
    """The outcome of a failed OTLP/gRPC call with status `code` (the StatusCode's name)."""
    reason = f"gRPC {code}" + (f": {message}" if message else "")
    delay = retry_info_delay(details)
    if code == "RESOURCE_EXHAUSTED":
        if delay is None:
            return SendResult.drop(reason + " (no RetryInfo: not retryable)")
        return SendResult.throttle(reason, delay)
    if code in RETRYABLE_GRPC:
        return SendResult.retry(reason, delay)
    return SendResult.drop(reason)


def accepted(response: object, field: str) -> Accepted:
    """Read `partial_success.<field>` (rejected_spans / rejected_log_records / rejected_data_points)."""
    partial = getattr(response, "partial_success", None)
    if partial is None:
        return Accepted()
    return Accepted(int(getattr(partial, field, 0)), partial.error_message)
