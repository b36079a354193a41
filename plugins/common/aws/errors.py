"""What an AWS error means for the output driver: retry later, or give the records up for good.

- Throttling codes and HTTP 429: `SendResult.throttle` (THROTTLED): the driver
  retries with backoff and also lowers the output's send rate (its adaptive
  token bucket, `collector/send_rate.py`).
- HTTP 5xx, timeouts, connection errors, expired or not yet available
  credentials: `SendResult.retry` (with `retry_after` when the response carries
  a Retry-After header). The driver backs off with full jitter.
- A component that cannot be set up (no region, an unknown profile): retry,
  logged once; its records are not to blame.
- Validation errors and any other 4xx: `SendResult.drop` (dead-lettered).
- Access errors: also dropped, after one log line naming the IAM permission
  that is missing (`missing IAM permission logs:PutLogEvents on arn:...`),
  so an operator knows exactly what to add to the policy.

Codes follow botocore's standard retry mode (`botocore/retries/standard.py`)
plus the access and credential errors of the AWS APIs the collector calls.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from botocore.exceptions import (
    ClientError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    MetadataRetrievalError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)

from collector.log import RepeatLimiter, kv
from collector.send_result import SendResult

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "OperationAbortedException",
        # Credentials that expired in flight are refreshed by botocore before the next attempt.
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
    }
)
ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnauthorizedException",
        "AuthorizationError",
        "AuthFailure",
        "KMSAccessDeniedException",
    }
)
# The request was not accepted as coming from valid credentials at all.
IDENTITY_CODES = frozenset(
    {"UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch", "InvalidSignatureException"}
)

_RESOURCE_RE = re.compile(r"\bon resource:?\s+(arn:[^\s\"'),;]+)")
_DEFAULT_LIMITER = RepeatLimiter(interval=300.0)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore `ClientError` (e.g. "ThrottlingException"), else None."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a botocore `ClientError`, else None."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status else None
    return None


def error_message(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Message") or exc)
    return str(exc) or type(exc).__name__


def retry_after(exc: BaseException) -> float | None:
    """Seconds from a Retry-After response header, when the service sent one (in seconds)."""
    if not isinstance(exc, ClientError):
        return None
    headers: dict[str, Any] = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    value = headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare for AWS; the driver's own backoff applies
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


def is_throttling(exc: BaseException) -> bool:
    """The service asked us to slow down: a throttling error code, or HTTP 429."""
    code = error_code(exc)
    return code is not None and (code in THROTTLING_CODES or http_status(exc) == 429)


def is_retryable(exc: BaseException) -> bool:
    """Throttling, 5xx, timeouts, connection and credential-availability errors."""
    code = error_code(exc)
    if code is not None:
        if code in THROTTLING_CODES or code in TRANSIENT_CODES:
            return True
        if http_status(exc) == 429:
            return True
        status = http_status(exc)
        return status is not None and status >= 500
    return isinstance(
        exc,
        ConnectionError
        | HTTPClientError
        | NoCredentialsError
        | PartialCredentialsError
        | CredentialRetrievalError
        | MetadataRetrievalError
        | asyncio.TimeoutError
        | OSError,
    )


def classify_aws_error(
    exc: BaseException,
    *,
    action: str,
    log: logging.Logger,
    resource: str | None = None,
    limiter: RepeatLimiter | None = None,
) -> SendResult:
    """Throttling codes, HTTP 5xx, timeouts and connection errors -> SendResult.retry (with retry_after
    when known); validation and access errors -> SendResult.drop(reason) (the driver dead-letters),
    logged once with the missing IAM permission (`action` is like "logs:PutLogEvents").

    `resource` names what was acted on when the error message does not (an ARN or a name);
    `limiter` keeps the access line to once per interval (a shared one by default).
    """
    code = error_code(exc)
    message = error_message(exc)
    label = code or type(exc).__name__
    if isinstance(exc, NoRegionError | ProfileNotFound):
        # The component's setup, not the records, is wrong: keep them (backpressure) until it is fixed.
        _log_once(log, limiter, ("setup", action), "AWS client cannot be set up; will retry", error=message)
        return SendResult.retry(f"{label}: {message}")
    if is_retryable(exc):
        if isinstance(exc, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
            _log_once(
                log,
                limiter,
                ("credentials", action),
                "no usable AWS credentials from the standard chain "
                "(environment, profile, web identity, ECS task role, instance metadata); will retry",
                error=message,
            )
        if is_throttling(exc):
            return SendResult.throttle(f"{label}: {message}", retry_after(exc))
        return SendResult.retry(f"{label}: {message}", retry_after(exc))
    if code in ACCESS_CODES:
        target = _resource_of(message) or resource or "*"
        _log_once(
            log,
            limiter,
            ("access", action, target),
            f"missing IAM permission {action} on {target}",
            code=code,
            error=message,
        )
        return SendResult.drop(f"access_denied: missing IAM permission {action} on {target}")
    if code in IDENTITY_CODES:
        _log_once(
            log,
            limiter,
            ("identity", action),
            "AWS rejected the credentials (check keys, profile, role)",
            code=code,
            action=action,
            error=message,
        )
        return SendResult.drop(f"invalid_credentials: {code}: {message}")
    if isinstance(exc, ParamValidationError):
        return SendResult.drop(f"invalid_request: {message}")
    return SendResult.drop(f"{label}: {message}")


def _resource_of(message: str) -> str | None:
    match = _RESOURCE_RE.search(message)
    return match.group(1) if match else None


def _log_once(
    log: logging.Logger, limiter: RepeatLimiter | None, key: tuple[str, ...], message: str, **fields: Any
) -> None:
    now, _, suppressed = (limiter or _DEFAULT_LIMITER).check(log.name, *key)
    if now:
        if suppressed:
            fields["repeats_suppressed"] = suppressed
        log.error(message, extra=kv(**fields))
