"""`exec`: runs a command hook for each record, the record as JSON on standard input.

The command is an argv list, started without a shell (nothing in a notification can inject
shell syntax); arguments may name record fields in braces (`{rule}`), each rendered into one
argument. Exit status 0 is delivered; `permanent_exit_codes` are dead-lettered; any other status,
a failure to start and a `timeout` (the process is killed) are retried by the shared driver.
The command's output is read (bounded) and its first line logged on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from collector.api import ComponentContext, Output, OutputConfig
from collector.events import LOGS, Batch
from collector.log import RepeatLimiter, kv
from collector.send_result import PermanentError, RetryableError
from collector.units import Duration
from collector_plugins.common.alerting.render import render_text
from collector_plugins.common.record_encoding import json_default

MAX_OUTPUT = 64 * 1024


class ExecConfig(OutputConfig):
    type: Literal["exec"] = Field(description="Runs a command per record.", examples=["exec"])
    command: list[str] = Field(
        min_length=1,
        description="Program and arguments (no shell); `{field}` in an argument is replaced by the record's field.",
        examples=[["/usr/local/bin/page-oncall", "--rule", "{rule}"]],
    )
    timeout: Duration = Field(30.0, description="Killed (and retried) after this long.", examples=["10s"])
    permanent_exit_codes: list[int] = Field(
        default_factory=list,
        description="Exit codes meaning the record will never be accepted (dead-lettered, not retried).",
        examples=[[2]],
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for the command.", examples=[{"TEAM": "sre"}]
    )


class ExecOutput(Output):
    type_name: ClassVar[str] = "exec"
    description: ClassVar[str] = "Runs a command for each notification (or log record), the record as JSON on stdin."
    Config: ClassVar[type[ExecConfig]] = ExecConfig
    accepts: ClassVar[frozenset[str]] = frozenset({LOGS})
    default_max_events: ClassVar[int | None] = 1

    config: ExecConfig

    def __init__(self, config: ExecConfig, ctx: ComponentContext) -> None:
        super().__init__(config, ctx)
        self.runs = 0
        self.failed_runs = 0
        self.timeouts = 0
        self._limiter = RepeatLimiter()

    async def write(self, batch: Batch) -> None:
        for record in batch.records:
            await self._run(record)

    async def _run(self, record: dict[str, Any]) -> None:
        note = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v) for k, v in record.items()}
        argv = [render_text(arg, note) for arg in self.config.command]
        data = orjson.dumps(note, default=json_default) + b"\n"
        env = {**os.environ, **self.config.environment}
        self.runs += 1
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            self.failed_runs += 1
            raise RetryableError(f"cannot start {argv[0]}: {exc.strerror}") from None
        try:
            output, _ = await asyncio.wait_for(process.communicate(data), timeout=self.config.timeout)
        except TimeoutError:
            self.timeouts += 1
            self.failed_runs += 1
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise RetryableError(f"{argv[0]} did not finish within {self.config.timeout:g}s") from None
        code = process.returncode
        if code == 0:
            return
        self.failed_runs += 1
        first = (output or b"")[:MAX_OUTPUT].decode("utf-8", "replace").strip().splitlines()
        if self._limiter.check("exit", str(code))[0]:
            self.log.warning(
                "command hook failed", extra=kv(command=argv[0], exit=code, output=first[0] if first else "")
            )
        if code in self.config.permanent_exit_codes:
            raise PermanentError(f"{argv[0]} exited {code}")
        raise RetryableError(f"{argv[0]} exited {code}")

    def counters(self) -> dict[str, float]:
        return {"runs": self.runs, "failed_runs": self.failed_runs, "timeouts": self.timeouts}
