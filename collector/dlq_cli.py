"""`collector dlq list | show | replay`: inspect dead letters and send them again.

`replay OUTPUT` builds that output from the config, queues the dead letters of
each file into a memory buffer and runs the same driver as the daemon (limits,
retries, per-record outcomes). Records the destination rejects again are
written to a new dead-letter file, then the replayed file is removed: nothing
is lost either way. Files a running collector is still appending to are
skipped (they are locked).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from collector.api import ComponentContext, HostFacts, Output
from collector.buffer.memory import MemoryBuffer
from collector.channel import Channel
from collector.config import Config
from collector.dlq import DeadLetterQueue, dead_letter_files, dlq_dir, is_locked, read_dead_letters
from collector.events import Batch
from collector.log import RepeatLimiter
from collector.output_driver import OutputRunner
from collector.private_files import open_private
from collector.progress import REDRAW_SECONDS, Progress
from collector.stats import ComponentStats


def outputs_of(config: Config) -> list[str]:
    return [n for n, spec in config.graph.components.items() if spec.section == "outputs"]


def list_dead_letters(config: Config) -> list[dict[str, Any]]:
    rows = []
    for name in outputs_of(config):
        files = dead_letter_files(config.data_dir, name)
        unreadable: list[bytes] = []
        records = sum(1 for f in files for _ in read_dead_letters(f, unreadable))
        rows.append(
            {
                "output": name,
                "files": len(files),
                "records": records,
                "unreadable_lines": len(unreadable),
                "bytes": sum(f.stat().st_size for f in files),
                "directory": str(dlq_dir(config.data_dir, name)),
            }
        )
    return rows


def show_dead_letters(config: Config, output: str, limit: int | None) -> int:
    shown = 0
    for path in dead_letter_files(config.data_dir, output):
        unreadable: list[bytes] = []
        for entry in read_dead_letters(path, unreadable):
            if limit is not None and shown >= limit:
                return shown
            record = entry["record"]
            if isinstance(record, dict):
                record = {k: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for k, v in record.items()}
            print(json.dumps({**entry, "record": record, "file": path.name}, default=str))
            shown += 1
        if unreadable:
            print(f"{path.name}: {len(unreadable)} unreadable line(s) passed over (cut short?)", file=sys.stderr)
    return shown


async def replay(config: Config, output_name: str, max_retries: int | None) -> dict[str, int]:
    spec = config.graph.components[output_name]
    log = logging.getLogger(f"collector.component.{output_name}")
    ctx = ComponentContext(output_name, log, config.data_dir, HostFacts(socket.gethostname()))
    instance = spec.plugin(spec.config, ctx)
    assert isinstance(instance, Output)
    out_config = spec.config
    if max_retries is not None:
        retry = out_config.retry.model_copy(update={"max_retries": max_retries})
        out_config = out_config.model_copy(update={"retry": retry})
    files = [f for f in dead_letter_files(config.data_dir, output_name) if not is_locked(f)]
    totals = {"files": 0, "records": 0, "delivered": 0, "rejected_again": 0, "unreadable_lines": 0}
    # A bar on a terminal (stderr); the summary line is the caller's either way.
    progress = Progress(sum(1 for f in files for _ in read_dead_letters(f)), "records")
    await instance.start()
    try:
        for path in files:
            stats = ComponentStats(output_name, "outputs", spec.type_name)
            buffer = MemoryBuffer(max_events=10**9, max_bytes=2**62, when_full="block", on_drop=stats.drop)
            dlq = DeadLetterQueue(dlq_dir(config.data_dir, output_name), output_name, spec.config.dead_letter.max_bytes)
            runner = OutputRunner(output_name, Channel(output_name), buffer, dlq, stats, log, RepeatLimiter(60))
            by_kind: dict[str, list[Any]] = defaultdict(list)
            unreadable: list[bytes] = []
            for entry in read_dead_letters(path, unreadable):
                by_kind[entry["kind"]].append(entry["record"])
            count = 0
            for kind, records in by_kind.items():
                for i in range(0, len(records), 1000):
                    chunk = records[i : i + 1000]
                    count += len(chunk)
                    await buffer.push(Batch(kind, chunk))  # type: ignore[arg-type]
            buffer.close_intake()
            base = totals["delivered"] + totals["rejected_again"]

            async def show(stats: ComponentStats = stats, base: int = base) -> None:
                while True:
                    progress.update(base + stats.sent_events + sum(stats.dropped.values()))
                    await asyncio.sleep(REDRAW_SECONDS)

            shower = asyncio.create_task(show())
            try:
                await runner.deliver(instance, out_config, asyncio.Event())
            finally:
                shower.cancel()
            dlq.close()
            if unreadable:  # kept for a person to look at, out of the way of the next replay
                keep_unreadable(path, unreadable)
                totals["unreadable_lines"] += len(unreadable)
            path.unlink()
            totals["files"] += 1
            totals["records"] += count
            totals["delivered"] += stats.sent_events
            totals["rejected_again"] += sum(stats.dropped.values())
            progress.update(totals["delivered"] + totals["rejected_again"])
    finally:
        progress.close()
        await instance.stop()
    return totals


def keep_unreadable(path: Path, lines: list[bytes]) -> None:
    """Append lines no replay can read to `<file>.unreadable` beside it (0600)."""
    kept = path.with_name(path.name + ".unreadable")
    fd = open_private(kept, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
        os.fsync(fd)
    finally:
        os.close(fd)


def run_dlq_command(args: Any, config: Config) -> int:
    names = outputs_of(config)
    if args.dlq_command == "list":
        rows = list_dead_letters(config)
        if args.format == "json":
            print(json.dumps(rows, indent=2))
        else:
            print(f"{'OUTPUT':<24}{'FILES':>7}{'RECORDS':>10}{'UNREADABLE':>12}{'BYTES':>12}  DIRECTORY")
            for row in rows:
                print(
                    f"{row['output']:<24}{row['files']:>7}{row['records']:>10}{row['unreadable_lines']:>12}"
                    f"{row['bytes']:>12}  {row['directory']}"
                )
        return 0
    if args.output not in names:
        known = ", ".join(names) or "none"
        print(f"no output named {args.output!r} in {config.file}; outputs: {known}", file=sys.stderr)
        return 2
    if args.dlq_command == "show":
        show_dead_letters(config, args.output, args.limit)
        return 0
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        totals = runner.run(replay(config, args.output, args.max_retries))
    unreadable = totals["unreadable_lines"]
    print(
        f"replayed {totals['records']} record(s) from {totals['files']} file(s): "
        f"{totals['delivered']} delivered, {totals['rejected_again']} rejected again (kept as dead letters)"
        + (f"; {unreadable} unreadable line(s) kept in *.jsonl.unreadable" if unreadable else "")
    )
    return 0 if totals["rejected_again"] == 0 else 1
