"""aiokafka's errors as driver outcomes: what is worth another try, and what never will be.

Permanent (the record goes to the dead-letter queue with the reason): a record or batch too large for the
broker (`MessageSizeTooLargeError`, `RecordListTooLargeError`, aiokafka's own `RecordTooLargeError`), an
invalid topic name, a rejected record (`InvalidMessageError`, `InvalidTimestampError`,
`UnsupportedForMessageFormatError`), and authorisation or authentication refused
(`TopicAuthorizationFailedError`, `ClusterAuthorizationFailedError`, `SaslAuthenticationFailed`,
`AuthenticationFailedError`...): an operator must act, and the records are kept in dead letters to replay.

Everything else is retried, whatever its `retriable` flag says: a leader election (`NotLeaderForPartitionError`,
`LeaderNotAvailableError`), `RequestTimedOutError`, `NotEnoughReplicasError`, a broker that is away
(`KafkaConnectionError`, `NodeNotReadyError`, `KafkaTimeoutError` when metadata or the acknowledgement did not
come in time), an unknown topic while it is being created, and any error this list does not name. Losing a
record because an unfamiliar error looked final costs more than retrying it.
"""

from __future__ import annotations

from aiokafka import errors as kafka_errors

from collector.send_result import Outcome

PERMANENT: tuple[type[BaseException], ...] = (
    kafka_errors.MessageSizeTooLargeError,
    kafka_errors.RecordListTooLargeError,
    kafka_errors.RecordTooLargeError,
    kafka_errors.InvalidTopicError,
    kafka_errors.InvalidMessageError,
    kafka_errors.InvalidTimestampError,
    kafka_errors.UnsupportedForMessageFormatError,
    kafka_errors.TopicAuthorizationFailedError,
    kafka_errors.ClusterAuthorizationFailedError,
    kafka_errors.TransactionalIdAuthorizationFailed,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.AuthenticationFailedError,
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.PolicyViolationError,
)


def outcome_of(exc: BaseException) -> Outcome:
    """DROP for the errors no retry can fix, RETRY for every other one."""
    return Outcome.DROP if isinstance(exc, PERMANENT) else Outcome.RETRY


def reason_of(exc: BaseException) -> str:
    text = str(exc)
    name = type(exc).__name__
    return f"{name}: {text}" if text and text != name else name
