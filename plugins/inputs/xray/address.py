"""The daemon address forms the X-Ray SDKs use (`AWS_XRAY_DAEMON_ADDRESS`).

- `host:port`: UDP (segments) and TCP (sampling proxy) on the same address;
- `udp:host:port tcp:host:port` (either order, separated by whitespace): each on its own.

IPv6 hosts are written in brackets: `[::1]:2000`, `udp:[::1]:2000`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV_VAR = "AWS_XRAY_DAEMON_ADDRESS"
DEFAULT_ADDRESS = "127.0.0.1:2000"


@dataclass(frozen=True)
class DaemonAddress:
    udp_host: str
    udp_port: int
    tcp_host: str
    tcp_port: int


def _host_port(text: str, whole: str) -> tuple[str, int]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError(f"invalid X-Ray daemon address {whole!r}: write an IPv6 host as [::1]:2000")
        host, port_text = text[1:end], text[end + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"invalid X-Ray daemon address {whole!r}: expected host:port, e.g. 127.0.0.1:2000")
    if not host:
        raise ValueError(f"invalid X-Ray daemon address {whole!r}: the host is empty")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid X-Ray daemon address {whole!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def parse_daemon_address(text: str) -> DaemonAddress:
    """Parse either form; raises ValueError naming the expected forms."""
    parts = text.split()
    if len(parts) == 1 and not parts[0].startswith(("udp:", "tcp:")):
        host, port = _host_port(parts[0], text)
        return DaemonAddress(host, port, host, port)
    if len(parts) == 2:
        found: dict[str, tuple[str, int]] = {}
        for part in parts:
            scheme, _, rest = part.partition(":")
            if scheme not in ("udp", "tcp") or scheme in found:
                break
            found[scheme] = _host_port(rest, text)
        else:
            return DaemonAddress(*found["udp"], *found["tcp"])
    raise ValueError(
        f"invalid X-Ray daemon address {text!r}: use host:port or 'udp:host:port tcp:host:port' "
        "(e.g. 127.0.0.1:2000 or 'udp:0.0.0.0:2000 tcp:127.0.0.1:2000')"
    )


def resolve_daemon_address(configured: str | None) -> tuple[DaemonAddress, str]:
    """The address to listen on and where it came from: the config, else the environment, else the default."""
    if configured is not None:
        return parse_daemon_address(configured), "config"
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        try:
            return parse_daemon_address(env), ENV_VAR
        except ValueError as exc:
            raise ValueError(f"{ENV_VAR}: {exc}") from None
    return parse_daemon_address(DEFAULT_ADDRESS), "default"
