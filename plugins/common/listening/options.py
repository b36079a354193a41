"""Config options the receiving inputs share (`socket`, `syslog`, `forward`, `emf`, `statsd`), declared once.

The options are annotated types rather than fields of a base model, so each
input's options keep their place in its schema and README. `ListenerOptions`
is a mixin for the config model: the input names its default scheme and the
schemes it takes (`listen_scheme`, `listen_schemes`), declares `listen` with
its own default and description, and gets the check of `listen` and the
`Listeners` built from the config.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, Field, field_validator

from collector.units import Duration, Size
from collector_plugins.common.listening.addresses import SCHEMES, Address, Scheme, parse_mode
from collector_plugins.common.listening.listeners import MAX_DATAGRAM_BYTES, DatagramHandler, Listeners, parse_addresses
from collector_plugins.common.listening.stream_server import DEFAULT_IDLE_TIMEOUT, DEFAULT_IN_FLIGHT_BYTES, Handler


def _check_mode(value: str | None) -> str | None:
    parse_mode(value)
    return value


MaxConnections = Annotated[
    int,
    Field(
        default=1000,
        ge=1,
        le=100_000,
        description=(
            "Stream sockets: connections served at once. A new connection beyond it takes the place of the one "
            "idle the longest (`connections_evicted`); if none is idle it is closed at once (`connections_refused`)."
        ),
        examples=[1000],
    ),
]


def _check_in_flight(value: int) -> int:
    if not 1024 * 1024 <= value <= 16 * 1024**3:
        raise ValueError("max_in_flight_bytes must be between 1MiB and 16GiB")
    return value


MaxInFlightBytes = Annotated[
    Size,
    AfterValidator(_check_in_flight),
    Field(
        default=DEFAULT_IN_FLIGHT_BYTES,
        description=(
            "Stream sockets: most memory all connections of this input hold together, received and not yet "
            "handed on (records counted at their decoded size). When it is reached the sockets are not read "
            "(TCP backpressure: senders block) until the downstream takes more; nothing is dropped."
        ),
        examples=["32MiB", "128MiB"],
    ),
]
IdleTimeout = Annotated[
    Duration | None,
    Field(
        default=DEFAULT_IDLE_TIMEOUT,
        description=(
            "Stream sockets: a connection that sends nothing for this long is closed (`connections_closed_idle`). "
            "A client that writes into it afterwards may lose that write, so keep it long; peers that vanished are "
            "found within about 2 minutes by TCP keepalive anyway. null keeps idle connections open."
        ),
        examples=["1h", "10m", None],
    ),
]
SocketMode = Annotated[
    str | None,
    AfterValidator(_check_mode),
    Field(
        default=None,
        description="Unix sockets: permissions of the socket file (octal); null keeps the umask's.",
        examples=["0660", None],
    ),
]
PeerField = Annotated[
    str | None,
    Field(
        default=None,
        description="Add the sender's address (`127.0.0.1:40312`, or `unix`) to every record under this name.",
        examples=["peer", None],
    ),
]


class ListenerOptions(BaseModel):
    """Mixin for a receiving input's config (which declares `listen`, `max_connections`, `max_in_flight_bytes`
    and `idle_timeout`)."""

    listen_scheme: ClassVar[Scheme]
    """The scheme of an address written without one."""
    listen_schemes: ClassVar[tuple[Scheme, ...]] = SCHEMES

    if TYPE_CHECKING:
        listen: list[str]
        max_connections: int
        max_in_flight_bytes: int
        idle_timeout: float | None

    @field_validator("listen", check_fields=False)
    @classmethod
    def _check_listen(cls, value: list[str]) -> list[str]:
        parse_addresses(value, cls.listen_scheme, cls.listen_schemes)
        return value

    def addresses(self) -> list[Address]:
        return parse_addresses(self.listen, self.listen_scheme, self.listen_schemes)

    def listeners(
        self,
        log: logging.Logger,
        component: str,
        *,
        stream_handler: Handler | None = None,
        datagram_handler: DatagramHandler | None = None,
        max_datagram_bytes: int = MAX_DATAGRAM_BYTES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> Listeners:
        socket_mode: str | None = getattr(self, "socket_mode", None)  # inputs without unix sockets lack the option
        return Listeners(
            self.addresses(),
            log,
            component,
            stream_handler=stream_handler,
            datagram_handler=datagram_handler,
            max_connections=self.max_connections,
            max_in_flight_bytes=self.max_in_flight_bytes,
            idle_timeout=self.idle_timeout,
            max_datagram_bytes=max_datagram_bytes,
            socket_mode=parse_mode(socket_mode),
            ssl_context=ssl_context,
        )
