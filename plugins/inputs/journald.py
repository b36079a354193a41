"""`journald` input: systemd journal entries, read through `journalctl -o json --follow`.

Design note. One `journalctl` child process follows the journal (optionally a
`directory` of journal files, filtered by units and match expressions) and
writes one JSON object per entry. Its stdout is read in large chunks; each
chunk's complete lines become one batch (one `orjson.loads` per entry, no
await per entry) emitted with `await ctx.emit`. While the downstream is full
the pipe is not read and journalctl blocks: backpressure.

Position: every entry carries its `__CURSOR`. Each batch gets an `AckToken`
whose position is the cursor of its last entry; `AckTracker` commits the
newest cursor whose batch and every earlier one are safe (durable in every
disk buffer, or delivered by every memory-buffered output). The committed
cursor is written to `<data_dir>/components/<name>/cursor.json` at most every
half second, when the input stops and once more in `drained()`. A restart
resumes with `--after-cursor`, so nothing acknowledged is read twice and
nothing unacknowledged is skipped. Without a saved cursor `read_from` says
where to begin: the current boot (default), the whole journal, or only new
entries.

If journalctl exits (a bad match expression, a missing directory), `run`
raises with its last words; the supervisor logs that and restarts the input
with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator

from collector.acks import AckTracker
from collector.api import ComponentContext, Input, InputConfig, InputContext
from collector.checkpoint import CheckpointError
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter, kv
from collector_plugins.common.framing import LineSplitter

READ_SIZE = 256 * 1024
# A journal field may be large (a core dump's is megabytes); a longer line cannot be one entry.
MAX_LINE_BYTES = 64 * 1024 * 1024
CHECKPOINT_INTERVAL = 0.5
STOP_TIMEOUT = 5.0
_MATCH = re.compile(r"^(\+|[A-Z0-9_]+=.*)$")
_CURSOR = re.compile(r"^s=[0-9a-f]+;i=[0-9a-f]+;b=[0-9a-f]+;m=[0-9a-f]+;t=[0-9a-f]+;x=[0-9a-f]+$")


class JournaldConfig(InputConfig):
    type: Literal["journald"] = Field(description="Reads the systemd journal.", examples=["journald"])
    units: list[str] = Field(
        default=[],
        description="Only entries of these systemd units (`journalctl --unit`); empty reads every unit.",
        examples=[["nginx.service", "docker.service"]],
    )
    matches: list[str] = Field(
        default=[],
        description=(
            "journalctl match expressions `FIELD=VALUE`: different fields must all match, the same field repeated "
            "matches any of its values, `+` separates alternatives."
        ),
        examples=[
            ["PRIORITY=0", "PRIORITY=1", "PRIORITY=2", "PRIORITY=3"],
            ["_TRANSPORT=kernel", "+", "SYSLOG_IDENTIFIER=sshd"],
        ],
    )
    directory: str | None = Field(
        default=None,
        description="Read the journal files under this directory (`journalctl --directory`), not the system journal.",
        examples=["/var/log/journal", None],
    )
    read_from: Literal["boot", "beginning", "end"] = Field(
        default="boot",
        description=(
            "Where to start when no cursor is saved yet: `boot` (the current boot's entries), `beginning` (the "
            "whole journal) or `end` (only new entries)."
        ),
        examples=["boot", "end"],
    )
    fields: list[str] | None = Field(
        default=None,
        description=(
            "Journal fields to keep besides MESSAGE (which becomes `message`); null keeps every field. Fields "
            "starting with `__` (cursor, timestamps) are never kept."
        ),
        examples=[["_SYSTEMD_UNIT", "PRIORITY", "_PID", "SYSLOG_IDENTIFIER", "_HOSTNAME"], None],
    )
    journalctl: str = Field(
        default="journalctl",
        description="The journalctl command (a name on PATH or a path).",
        examples=["journalctl", "/usr/bin/journalctl"],
    )

    @field_validator("matches")
    @classmethod
    def _check_matches(cls, value: list[str]) -> list[str]:
        for match in value:
            if not _MATCH.match(match):
                raise ValueError(f"match {match!r} must be FIELD=VALUE (FIELD in capitals, digits and _) or '+'")
        return value

    @field_validator("units")
    @classmethod
    def _check_units(cls, value: list[str]) -> list[str]:
        for unit in value:
            if not unit or unit.startswith("-") or "\n" in unit:
                raise ValueError(f"invalid unit name {unit!r}")
        return value

    @field_validator("fields")
    @classmethod
    def _check_fields(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if not re.fullmatch(r"[A-Z0-9_]+", name):
                raise ValueError(f"invalid journal field name {name!r}")
        return value


def journalctl_command(config: JournaldConfig, cursor: str | None) -> list[str]:
    """The journalctl command line for `config`, resuming after `cursor` when there is one."""
    cmd = [config.journalctl, "--output=json", "--follow", "--all", "--no-pager", "--quiet"]
    if config.directory is not None:
        cmd.append(f"--directory={config.directory}")
    if cursor is not None:
        # --no-tail matters: with --follow and a match, journalctl otherwise shows only 10 entries after the cursor.
        cmd += [f"--after-cursor={cursor}", "--no-tail"]
    elif config.read_from == "end":
        cmd.append("--lines=0")
    else:
        cmd.append("--no-tail")
        if config.read_from == "boot":
            cmd.append("--boot")
    if config.fields is not None:
        cmd.append("--output-fields=" + ",".join(["MESSAGE", *config.fields]))
    cmd.extend(f"--unit={unit}" for unit in config.units)
    cmd.extend(config.matches)
    return cmd


def _text(value: Any) -> Any:
    """journalctl's JSON gives a binary field as a list of byte values, a repeated field as a list of values."""
    if type(value) is list:
        if value and all(type(v) is int for v in value):
            return bytes(value).decode("utf-8", "replace")
        return [_text(v) for v in value]
    return value


class Journald(Input):
    type_name: ClassVar[str] = "journald"
    description: ClassVar[str] = (
        "Reads systemd journal entries through journalctl, resuming from an acknowledged cursor."
    )
    Config: ClassVar[type[JournaldConfig]] = JournaldConfig
    emits: ClassVar[frozenset[str]] = frozenset((LOGS,))

    config: JournaldConfig

    def __init__(self, config: JournaldConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.checkpoint = ctx.checkpoint_file("cursor.json")
        self.tracker = AckTracker(self._committed)
        self.entries = 0
        self.invalid_lines = 0
        self.cursor_saves = 0
        self.saved_cursor: str | None = None
        """The cursor last written to the checkpoint."""
        self._commit: str | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._limiter = RepeatLimiter()

    def counters(self) -> dict[str, float]:
        return {
            "entries": self.entries,
            "invalid_lines": self.invalid_lines,
            "cursor_saves": self.cursor_saves,
            "unacknowledged_batches": self.tracker.outstanding,
        }

    def _committed(self, cursor: str) -> None:
        self._commit = cursor

    def load_cursor(self) -> str | None:
        try:
            state = self.checkpoint.load()
        except CheckpointError as exc:
            self.log.error(
                "journal cursor checkpoint is unreadable; starting from read_from",
                extra=kv(component=self.ctx.name, error=str(exc), read_from=self.config.read_from),
            )
            return None
        cursor = state.get("cursor") if state else None
        if cursor is not None and (not isinstance(cursor, str) or not _CURSOR.match(cursor)):
            self.log.error(
                "journal cursor checkpoint holds no valid cursor; starting from read_from",
                extra=kv(component=self.ctx.name, path=str(self.checkpoint.path), read_from=self.config.read_from),
            )
            return None
        return cursor

    def save_cursor(self) -> None:
        """Write the newest acknowledged cursor, if it moved."""
        cursor = self._commit
        if cursor is None or cursor == self.saved_cursor:
            return
        self.checkpoint.save({"cursor": cursor, "saved_at": time.time()})
        self.saved_cursor = cursor
        self.cursor_saves += 1

    async def run(self, ctx: InputContext) -> None:
        cursor = self.load_cursor()
        self.saved_cursor = cursor
        cmd = journalctl_command(self.config, cursor)
        self._proc = proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=READ_SIZE,
        )
        self.log.info(
            "following the journal",
            extra=kv(component=ctx.name, after_cursor=cursor is not None, read_from=self.config.read_from),
        )
        saver = asyncio.ensure_future(self._save_periodically(ctx))
        stop = asyncio.ensure_future(ctx.stopping.wait())
        try:
            reading = asyncio.ensure_future(self._read(ctx, proc))
            await asyncio.wait({reading, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
                return
            reading.result()
            if ctx.stopping.is_set():
                return
            stderr = (await proc.stderr.read()).decode(errors="replace").strip() if proc.stderr else ""
            code = await proc.wait()
            raise RuntimeError(f"journalctl exited with status {code}: {stderr[-500:] or 'no message'}")
        finally:
            stop.cancel()
            saver.cancel()
            await self._end_process()
            self.save_cursor()

    async def _read(self, ctx: InputContext, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        splitter = LineSplitter(MAX_LINE_BYTES)
        read = proc.stdout.read
        while chunk := await read(READ_SIZE):
            lines, _ = splitter.feed(chunk)
            if lines:
                await self._emit(ctx, lines, len(chunk))

    async def _emit(self, ctx: InputContext, lines: list[bytes], nbytes: int) -> None:
        records, cursor = self._records(lines)
        if not records:
            return
        batch = Batch(LOGS, records, nbytes, ack=self.tracker.token(cursor))
        try:
            await ctx.emit(batch)
        except asyncio.CancelledError:
            ctx.loss("stopped", len(records))  # not acknowledged: read again after the restart
            raise

    def _records(self, lines: list[bytes]) -> tuple[list[dict[str, Any]], str | None]:
        keep = self.config.fields
        loads = orjson.loads
        records: list[dict[str, Any]] = []
        cursor: str | None = None
        invalid = 0
        for line in lines:
            try:
                entry = loads(line)
                cursor = entry.pop("__CURSOR")
                stamp = int(entry.pop("__REALTIME_TIMESTAMP")) / 1e6
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                if line.strip():
                    invalid += 1
                continue
            message = entry.pop("MESSAGE", "")
            if type(message) is list:
                message = _text(message)
                if type(message) is list:  # MESSAGE given more than once
                    message = "\n".join(map(str, message))
            record: dict[str, Any] = {"timestamp": stamp, "message": message}
            for name, value in entry.items():
                if name.startswith("__") or (keep is not None and name not in keep):
                    continue
                record[name] = value if type(value) is not list else _text(value)
            records.append(record)
        if invalid:
            self.invalid_lines += invalid
            self.ctx.loss("invalid_entry", invalid)
            now, _, suppressed = self._limiter.check("invalid")
            if now:
                self.log.warning(
                    "journalctl wrote lines that are not journal entries",
                    extra=kv(component=self.ctx.name, lines=invalid, repeats_suppressed=suppressed),
                )
        self.entries += len(records)
        return records, cursor

    async def _save_periodically(self, ctx: InputContext) -> None:
        while not await ctx.sleep(CHECKPOINT_INTERVAL):
            try:
                self.save_cursor()
            except OSError as exc:
                now, _, _ = self._limiter.check("save")
                if now:
                    self.log.error("cannot save the journal cursor", extra=kv(component=ctx.name, error=str(exc)))

    async def _end_process(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def stop(self) -> None:
        await self._end_process()
        self.save_cursor()

    async def drained(self) -> None:
        self.save_cursor()
