from __future__ import annotations

import socket
from pathlib import Path

from collector.notify import Notifier


def test_disabled_without_socket() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    notifier.ready()  # no-op, no error


def test_messages_reach_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
        assert notifier.watchdog_interval == 1.0
        notifier.ready()
        assert sock.recv(1024) == b"READY=1\nSTATUS=running"
        notifier.reloading()
        message = sock.recv(1024).decode()
        assert message.startswith("RELOADING=1\nMONOTONIC_USEC=")
        notifier.stopping()
        assert sock.recv(1024).startswith(b"STOPPING=1")
        notifier.close()
    finally:
        sock.close()


def test_watchdog_for_another_pid_is_ignored() -> None:
    assert Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "10", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"NOTIFY_SOCKET": "@x"}).address == "\0x"
