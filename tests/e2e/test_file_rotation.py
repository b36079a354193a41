"""The real daemon tailing files that are rotated (rename, copytruncate, delete + create) while it restarts.

A writer thread appends uniquely numbered lines to three files, the way applications
and logrotate treat them:

- `a.log`, rotated by rename (`create` mode): older generations shifted (`.1` -> `.2`
  ...), `a.log` renamed to `a.log.1` (no longer matched), a few more lines written to
  the renamed file (the application has not reopened yet), then a new `a.log`;
- `b.log`, rotated by `copytruncate`: copied to `b.log.1`, then truncated; the writer
  keeps its `O_APPEND` descriptor (no write falls between the copy and the truncation,
  which would be lost by copytruncate itself);
- `c.log`, deleted and created again once all its lines were delivered: ext4 hands the
  freed inode to the new file, which must be read from its start (not skipped, not
  taken for the old one).

Meanwhile the collector is stopped and started again (SIGTERM, or SIGKILL), so some
rotations happen while it is down: at most one per file per outage, as with any real
rotation schedule (a generation created *and* rotated away during one outage was never
seen by the collector and matches no pattern: nobody can know it is there). An outage
begins `SEEN_WITHIN` before the stop: a rotation made just before it is never seen.
The sink is the `file` output; every delivered line is counted per file: loss and
duplicates are printed, and must be zero after clean stops (nothing may be lost after
kills). `ROTATION_SEED=<printed seed>` replays a run's choices (not its exact timing).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from collector.testing import wait_for_sync
from tests.e2e.conftest import Collector

NAMES = ("a", "b", "c")
GENERATIONS = 5
SEEN_WITHIN = 0.25
"""Seconds the collector may take to see a rotation (an event) and record the new file in its checkpoint."""


class Sink:
    """Reads the file output's text lines incrementally and counts them per source file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[str, Counter[int]] = {name: Counter() for name in NAMES}
        self._offset = 0
        self._partial = b""
        self._lock = threading.Lock()

    def update(self) -> None:
        with self._lock:
            if not self.path.exists():
                return
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
            self._offset += len(data)
            lines = (self._partial + data).split(b"\n")
            self._partial = lines.pop()
            for line in lines:
                name, _, seq = line.decode().partition(" ")
                self.seen[name][int(seq)] += 1

    def delivered(self, name: str, count: int) -> bool:
        self.update()
        with self._lock:
            return all(self.seen[name][i] for i in range(count))


def holds_deleted(pid: int | None, path: Path) -> bool:
    """Whether process `pid` still has the deleted file `path` open."""
    if pid is None:
        return False
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == f"{path} (deleted)":
                return True
        except OSError:
            continue
    return False


class Writer(threading.Thread):
    def __init__(self, logs: Path, sink: Sink, seed: int, collector_pid: Callable[[], int | None]) -> None:
        super().__init__(daemon=True)
        self.logs = logs
        self.sink = sink
        self.collector_pid = collector_pid
        self.rnd = random.Random(seed)
        self.stopping = threading.Event()
        self.written = dict.fromkeys(NAMES, 0)
        self.rotations = Counter[str]()
        self.inode_reused = 0
        self.fds: dict[str, int | None] = {name: self._open(name) for name in NAMES}
        self.error: BaseException | None = None
        self.down = threading.Event()
        """Set while the collector is stopped (from `SEEN_WITHIN` before, until it has had time to look again)."""
        self.rotated_while_down: set[str] = set()

    def may_rotate(self, name: str) -> bool:
        if not self.down.is_set():
            return True
        if name in self.rotated_while_down:
            return False
        self.rotated_while_down.add(name)
        return True

    def path(self, name: str, generation: int = 0) -> Path:
        return self.logs / (f"{name}.log" if generation == 0 else f"{name}.log.{generation}")

    def _open(self, name: str) -> int:
        return os.open(self.path(name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _write(self, name: str, fd: int) -> None:
        os.write(fd, f"{name} {self.written[name]}\n".encode())
        self.written[name] += 1

    def _shift(self, name: str) -> None:
        for generation in range(GENERATIONS - 1, 0, -1):
            if self.path(name, generation).exists():
                os.replace(self.path(name, generation), self.path(name, generation + 1))

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _run(self) -> None:
        now = time.monotonic()
        due = {"a": now + 0.7, "b": now + 1.0, "c": now + 1.3}
        c_state, c_inode = "writing", os.fstat(self.fds["c"] or 0).st_ino
        while not self.stopping.is_set():
            for name in NAMES:
                fd = self.fds[name]
                if fd is not None:
                    self._write(name, fd)
            time.sleep(0.002)  # not a wait: the writers' pace
            now = time.monotonic()
            if now >= due["a"] and self.may_rotate("a"):
                self._rotate_by_rename()
                due["a"] = now + self.rnd.uniform(0.6, 1.2)
            if now >= due["b"] and self.may_rotate("b"):
                self._copytruncate()
                due["b"] = now + self.rnd.uniform(0.6, 1.2)
            if c_state == "writing" and now >= due["c"]:
                c_state = "draining"
                fd = self.fds["c"]
                assert fd is not None
                os.close(fd)
                self.fds["c"] = None
            elif c_state == "draining" and self.sink.delivered("c", self.written["c"]) and self.may_rotate("c"):
                os.unlink(self.path("c"))  # every line of it is delivered: deleting loses nothing
                c_state = "deleted"
                self.rotations["delete"] += 1
            elif c_state == "deleted" and not holds_deleted(self.collector_pid(), self.path("c")):
                # The collector has released the old file: its inode is free, and the next file made gets it.
                fd = self._open("c")
                self.inode_reused += os.fstat(fd).st_ino == c_inode
                c_inode = os.fstat(fd).st_ino
                self.fds["c"] = fd
                c_state = "writing"
                due["c"] = now + self.rnd.uniform(0.8, 1.5)
        for name, fd in self.fds.items():
            if fd is not None:
                os.close(fd)
                self.fds[name] = None

    def _rotate_by_rename(self) -> None:
        self._shift("a")
        os.rename(self.path("a"), self.path("a", 1))
        old = self.fds["a"]
        assert old is not None
        for _ in range(3):  # written before the application notices and reopens its log
            self._write("a", old)
        os.close(old)
        self.fds["a"] = self._open("a")
        self.rotations["rename"] += 1

    def _copytruncate(self) -> None:
        self._shift("b")
        shutil.copyfile(self.path("b"), self.path("b", 1))
        os.truncate(self.path("b"), 0)
        self.rotations["copytruncate"] += 1


def config(collector: Collector, buffer: str) -> str:
    logs = collector.workdir / "logs"
    return f"""\
inputs:
  logs:
    type: file
    include: ["{logs}/*.log"]
    rotate_wait: 500ms
    glob_interval: 1s
    poll_interval: 200ms
outputs:
  sink:
    type: file
    inputs: [logs]
    path: {collector.workdir / "out.txt"}
    codec: text
    max_bytes: null
    buffer: {buffer}
"""


RESTARTS = 4  # a count, not a time budget: a slow machine gets the same number of restarts, each timed


def run_scenario(collector: Collector, stop_signal: int, buffer: str) -> tuple[Writer, Sink, int]:
    logs = collector.workdir / "logs"
    logs.mkdir()
    collector.write_config(config(collector, buffer))
    sink = Sink(collector.workdir / "out.txt")
    # ROTATION_SEED replays a printed seed (the writer's choices and the restart times; not the exact timing).
    seed = int(os.environ["ROTATION_SEED"]) if os.environ.get("ROTATION_SEED") else random.randrange(2**32)
    print(f"seed={seed}")
    rnd = random.Random(seed)
    writer = Writer(logs, sink, seed, lambda: collector.proc.pid if collector.proc is not None else None)
    collector.start()
    writer.start()
    restarts = 0
    while restarts < RESTARTS:
        time.sleep(rnd.uniform(0.8, 1.6) - SEEN_WITHIN)  # not a wait: a random time to run before the stop
        writer.rotated_while_down.clear()
        writer.down.set()
        time.sleep(SEEN_WITHIN)  # not a wait: a rotation now counts as one of the outage (may be unseen)
        stopping = time.monotonic()
        collector.signal(stop_signal)
        code = collector.wait(timeout=20)
        assert stop_signal == signal.SIGKILL or code == 0, collector.stderr()
        stopped = time.monotonic()
        time.sleep(rnd.uniform(0.1, 0.4))  # not a wait: down for a random time, the writer goes on writing and rotating
        starting = time.monotonic()
        collector.start()
        print(f"restart {restarts + 1}: stop {stopped - stopping:.2f}s, start {time.monotonic() - starting:.2f}s")
        # The input has scanned the files again (it watches none before).
        wait_for_sync(lambda: collector.component("logs")["extra"].get("files_watched", 0) >= 2, timeout=10)
        writer.down.clear()
        restarts += 1
    writer.stopping.set()
    writer.join(timeout=20)
    assert writer.error is None, writer.error
    try:
        wait_for_sync(lambda: all(sink.delivered(n, writer.written[n]) for n in NAMES), timeout=30, interval=0.2)
    except TimeoutError:
        pass  # the counts below say what is missing
    collector.signal(signal.SIGTERM)
    assert collector.wait(timeout=20) == 0, collector.stderr()
    sink.update()
    print(f"seed={seed} restarts={restarts} written={writer.written} rotations={dict(writer.rotations)}")
    print(f"inode reused by the recreated c.log: {writer.inode_reused} times")
    return writer, sink, restarts


def losses_and_duplicates(writer: Writer, sink: Sink) -> tuple[dict[str, list[int]], dict[str, int]]:
    missing = {n: sorted(set(range(writer.written[n])) - set(sink.seen[n])) for n in NAMES}
    duplicates = {n: sum(c - 1 for c in sink.seen[n].values()) for n in NAMES}
    print("lost:", {n: len(m) for n, m in missing.items()}, "duplicates:", duplicates)
    return missing, duplicates


@pytest.mark.slow
def test_clean_restarts_during_rotation_deliver_every_line_exactly_once(collector: Collector) -> None:
    writer, sink, restarts = run_scenario(collector, signal.SIGTERM, "{type: memory}")
    missing, duplicates = losses_and_duplicates(writer, sink)
    assert restarts == RESTARTS
    assert min(writer.rotations[k] for k in ("rename", "copytruncate", "delete")) >= 2, writer.rotations
    assert all(not m for m in missing.values()), {n: m[:10] for n, m in missing.items()}
    assert duplicates == dict.fromkeys(NAMES, 0)


@pytest.mark.slow
def test_killed_collector_during_rotation_loses_nothing(collector: Collector) -> None:
    writer, sink, restarts = run_scenario(
        collector, signal.SIGKILL, "{type: disk, max_bytes: 64MiB, fsync: interval, fsync_interval: 100ms}"
    )
    missing, _duplicates = losses_and_duplicates(writer, sink)
    assert restarts == RESTARTS
    assert all(not m for m in missing.values()), {n: m[:10] for n, m in missing.items()}
