"""A real `systemd-journald` started by a test, isolated from the rest of the machine.

journald's sockets (/run/systemd/journal/...) and runtime store (/run/log/journal) are fixed paths. To keep a
test's journal its own, journald runs in a private mount namespace (`unshare --mount`) on a fresh tmpfs over
/run, with a temporary directory bind-mounted as its store, so its journal files are visible outside the
namespace at `store` (read them with `journalctl --directory`). Writers run inside that namespace with
`nsenter --mount`: `systemd-cat` (stdout stream transport) and `logger --journald` (native protocol).

Needs root (namespaces, mounts) and /lib/systemd/systemd-journald; `available()` says whether this machine
can, and why not.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from collector.testing import wait_for_sync

JOURNALD = Path("/lib/systemd/systemd-journald")

# Inside the namespace: a private /run, the store bind-mounted, and a drop-in that keeps journald to its own
# store and sockets (never /var/log/journal, no kernel messages, no forwarding).
_START = """\
set -e
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/systemd/journal /run/log/journal /run/systemd/journald.conf.d
mount --bind "$1" /run/log/journal
printf '[Journal]\\nStorage=volatile\\nReadKMsg=no\\nForwardToSyslog=no\\nForwardToWall=no\\n' \\
    > /run/systemd/journald.conf.d/test.conf
exec "$2"
"""


def available() -> str:
    """'' if a journald can be started here, else why not."""
    if os.geteuid() != 0:
        return "starting systemd-journald in a private mount namespace needs root"
    for tool in ("unshare", "nsenter", "systemd-cat", "logger", "journalctl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not JOURNALD.exists():
        return f"{JOURNALD} is not installed (Debian package systemd)"
    if not Path("/etc/machine-id").exists():
        return "/etc/machine-id is missing"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"cannot create a mount namespace: {probe.stderr.strip()}"
    return ""


class Journald:
    def __init__(self, workdir: Path) -> None:
        self.store = workdir / "journal"
        self.store.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "journald.log"
        self._log = self.log_path.open("wb")
        # unshare execs sh, which execs journald: the PID is journald's own, so it is the one to stop.
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                _START,
                "start",
                str(self.store),
                str(JOURNALD),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        machine = Path("/etc/machine-id").read_text().strip()

        def started() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError("exited")
            return (self.store / machine / "system.journal").exists()

        try:
            wait_for_sync(started, timeout=10)
        except (TimeoutError, RuntimeError):
            self.stop()
            raise RuntimeError(f"systemd-journald did not start: {self.log_path.read_text()[-2000:]}") from None
        self._wait_for_socket()

    def _inside(self, *cmd: str, stdin: bytes | None = None) -> None:
        subprocess.run(
            ["nsenter", f"--mount=/proc/{self.proc.pid}/ns/mnt", "--", *cmd],
            input=stdin,
            capture_output=True,
            check=True,
            timeout=10,
        )

    def _wait_for_socket(self) -> None:
        def listening() -> bool:
            try:
                self._inside("test", "-S", "/run/systemd/journal/socket")
                self._inside("test", "-S", "/run/systemd/journal/stdout")
            except subprocess.CalledProcessError:
                return False
            return True

        wait_for_sync(listening, timeout=10)

    def cat(self, identifier: str, lines: list[str], priority: str = "info") -> None:
        """Write `lines` through `systemd-cat` (journald's stdout stream transport)."""
        self._inside(
            "systemd-cat", "-t", identifier, "-p", priority, "cat", stdin="".join(f"{x}\n" for x in lines).encode()
        )

    def logger(self, fields: dict[str, str]) -> None:
        """Write one entry with these fields through `logger --journald` (the native protocol)."""
        self._inside("logger", "--journald", stdin="".join(f"{k}={v}\n" for k, v in fields.items()).encode())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
