"""Delivery guarantees of the real daemon: crashes, outages, corruption, dead letters."""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from pathlib import Path

from collector.buffer.segment import HEADER, HEADER_SIZE, MAGIC
from collector.testing import wait_for_sync
from tests.e2e.conftest import Collector, cli, json_lines


def delivered(path: Path, torn_at_most: int = 0) -> list[int]:
    return [r["sequence"] for r in json_lines(path, torn_at_most)]


def gate_config(workdir: Path, generator: str, buffer: str, extra: str = "") -> str:
    return f"""\
inputs:
  seq:
    type: generator
{generator}
outputs:
  dest:
    type: gate
    inputs: [seq]
    path: {workdir / "delivered.jsonl"}
    closed_while: {workdir / "outage"}
    buffer: {buffer}
    retry: {{initial_backoff: 50ms, max_backoff: 200ms}}
{extra}"""


def test_sigkill_at_random_moments_loses_nothing(collector: Collector) -> None:
    # Enough lines that ten lives (start-up included, slower on a loaded machine) cannot finish them.
    total = 60_000
    collector.write_config(
        gate_config(
            collector.workdir,
            "    rate: 8000\n    batch_size: 400\n    checkpoint: true\n    count: " + str(total),
            "{type: disk, max_bytes: 64MiB, fsync: interval, fsync_interval: 200ms}",
        )
    )
    seed = random.randrange(2**32)
    rnd = random.Random(seed)
    kills = 0
    while kills < 10:
        collector.start()
        time.sleep(rnd.uniform(0.1, 0.9))  # not a wait: a random moment to kill at
        if collector.proc is not None and collector.proc.poll() is None:
            collector.signal(signal.SIGKILL)
            collector.wait()
            kills += 1
        else:
            break  # finished already (it never does this early at this rate)
    collector.start(wait_ready=False)
    assert collector.wait(timeout=60) == 0, collector.stderr()  # every input finished: drained, exit 0
    got = delivered(collector.workdir / "delivered.jsonl", torn_at_most=kills)
    counts = Counter(got)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"seed={seed} kills={kills} delivered={len(got)} duplicates={duplicates}")
    assert kills == 10
    assert set(counts) == set(range(total)), f"missing: {sorted(set(range(total)) - set(counts))[:20]}"


def test_outage_with_disk_buffer_blocks_then_delivers_everything(collector: Collector) -> None:
    outage = collector.workdir / "outage"
    outage.touch()
    max_bytes = 2 * 1024 * 1024
    collector.write_config(
        gate_config(
            collector.workdir,
            "    rate: 20000\n    batch_size: 500\n    message_bytes: 200",
            f"{{type: disk, max_bytes: {max_bytes}, when_full: block}}",
        )
    )
    collector.start()
    # The buffer fills up to its bound, the channel in front of it too, then the generator is held back.
    wait_for_sync(lambda: collector.metric("collector_buffer_bytes", component="dest") > max_bytes * 0.7, timeout=20)

    def held_back() -> bool:
        before = collector.component("seq")["sent_events"]
        time.sleep(0.5)  # not a wait: the window the rate is measured over
        return collector.component("seq")["sent_events"] - before < 500  # it would send 10000 in 0.5 s

    wait_for_sync(held_back, timeout=20)
    held = collector.component("seq")["sent_events"]
    assert collector.metric("collector_buffer_bytes", component="dest") <= max_bytes
    assert collector.metric("collector_component_retries_total", component="dest") > 0

    outage.unlink()  # the destination comes back
    wait_for_sync(lambda: collector.component("seq")["sent_events"] > held + 20000, timeout=20)
    collector.signal(signal.SIGTERM)
    assert collector.wait() == 0
    got = delivered(collector.workdir / "delivered.jsonl")
    assert sorted(set(got)) == list(range(max(got) + 1)), "a gap in the delivered sequence numbers"
    assert "loss ledger" not in collector.stderr()  # nothing was dropped, so nothing to report


def test_outage_with_drop_newest_counts_every_drop(collector: Collector) -> None:
    outage = collector.workdir / "outage"
    outage.touch()
    collector.write_config(
        gate_config(
            collector.workdir,
            "    rate: 5000\n    batch_size: 100\n    count: 20000",
            "{type: memory, max_events: 1000, when_full: drop_newest}",
        )
        + "log: {loss_summary_interval: 1s}\n"
    )
    collector.start()
    wait_for_sync(
        lambda: (
            collector.metric("collector_component_dropped_events_total", component="dest", reason="buffer_full") > 1000
        ),
        timeout=20,
    )
    outage.unlink()
    assert collector.wait(timeout=30) == 0  # count reached: drained and exited
    stderr = collector.stderr()
    got = delivered(collector.workdir / "delivered.jsonl")
    assert len(set(got)) == len(got)  # no retries of accepted data here: no duplicates either
    ledger = [line for line in stderr.splitlines() if 'msg="loss ledger: events not delivered during this run"' in line]
    assert ledger, stderr
    dropped = int(ledger[-1].split("dest.buffer_full=")[1].split()[0])
    assert len(got) + dropped == 20000  # every event either delivered or counted


def test_corrupt_and_torn_segments_lose_only_the_bad_records(collector: Collector) -> None:
    outage = collector.workdir / "outage"
    outage.touch()
    config = gate_config(
        collector.workdir,
        "    batch_size: 100\n    count: 3000\n    message_bytes: 100",
        "{type: disk, max_bytes: 64MiB, fsync: always}",
    )
    collector.write_config(config)
    collector.start(wait_ready=False)
    assert collector.wait() == 0  # all generated; the destination is down: the disk buffer keeps it all

    segments = sorted((collector.workdir / "data" / "buffers" / "dest").glob("*.seg"))
    assert segments
    data = bytearray(segments[0].read_bytes())
    frames = frame_offsets(bytes(data))
    assert len(frames) >= 5
    data[frames[2] + 40] ^= 0xFF  # a flipped byte inside the third frame's payload
    segments[0].write_bytes(bytes(data))
    last = segments[-1]
    with last.open("r+b") as f:
        f.truncate(frame_offsets(last.read_bytes())[-1] + 30)  # the last frame torn mid-write

    # Restart with nothing new to send and the destination back: the backlog drains, then it exits.
    outage.unlink()
    collector.write_config(config.replace("count: 3000", "count: 0"))
    collector.start(wait_ready=False)
    assert collector.wait() == 0
    stderr = collector.stderr()
    got = set(delivered(collector.workdir / "delivered.jsonl"))
    missing = sorted(set(range(3000)) - got)
    assert missing == list(range(200, 300)) + list(range(2900, 3000)), missing[:10]  # the two bad batches only
    assert segments[0].name in stderr  # the log names the segment (and offset) of the bad record
    assert "dest.corrupt_record=100" in stderr  # the damaged frame's records, in the loss ledger


def frame_offsets(data: bytes) -> list[int]:
    """Offsets of the frames in a segment, read with the buffer's own header layout."""
    offsets, pos = [], 0
    while pos + HEADER_SIZE <= len(data) and data[pos : pos + 4] == MAGIC:
        offsets.append(pos)
        _magic, _crc, length, _count, _created = HEADER.unpack_from(data, pos)
        pos += HEADER_SIZE + length
    return offsets


def test_dead_letters_can_be_listed_and_replayed(collector: Collector) -> None:
    collector.write_config(
        gate_config(collector.workdir, "    batch_size: 50\n    count: 700", "{type: memory}", "    reject_every: 7\n")
    )
    collector.start(wait_ready=False)
    assert collector.wait(timeout=30) == 0
    got = delivered(collector.workdir / "delivered.jsonl")
    assert len(got) == 600 and all(s % 7 for s in got)

    # A dead-letter file whose last line a kill -9 cut short: the line is passed over, the others are not.
    (dead_file,) = (collector.workdir / "data" / "dead_letter" / "dest").glob("*.jsonl")
    with dead_file.open("ab") as f:
        f.write(b'{"time": 1.0, "output": "dest", "kind": "logs", "reason": "x", "record": {"seq')
    listing = cli("dlq", "list", "-c", str(collector.config), "--format", "json")
    row = json.loads(listing.stdout)[0]
    assert row["records"] == 100 and row["unreadable_lines"] == 1, row
    shown = cli("dlq", "show", "dest", "-c", str(collector.config))
    first = json.loads(shown.stdout.splitlines()[0])
    assert first["reason"] == "ValidationException: sequence rejected" and first["record"]["sequence"] == 0
    assert len(shown.stdout.splitlines()) == 100 and "1 unreadable line(s)" in shown.stderr

    # The destination now accepts them: replay sends every dead letter and removes the files.
    collector.config.write_text(collector.config.read_text().replace("    reject_every: 7\n", ""))
    replay = cli("dlq", "replay", "dest", "-c", str(collector.config))
    assert replay.returncode == 0, replay.stderr
    assert "100 delivered, 0 rejected again" in replay.stdout and "1 unreadable line(s) kept" in replay.stdout
    assert sorted(delivered(collector.workdir / "delivered.jsonl")) == list(range(700))
    kept = dead_file.with_name(dead_file.name + ".unreadable")
    assert kept.read_bytes().startswith(b'{"time": 1.0') and kept.stat().st_mode & 0o777 == 0o600
    assert json.loads(cli("dlq", "list", "-c", str(collector.config), "--format", "json").stdout)[0]["records"] == 0


def test_sigterm_with_destination_down_exits_in_time_and_keeps_everything(collector: Collector) -> None:
    outage = collector.workdir / "outage"
    outage.touch()
    config = gate_config(
        collector.workdir,
        "    rate: 20000\n    batch_size: 500\n    checkpoint: true",
        "{type: disk, max_bytes: 256MiB}",
    )
    collector.write_config(config)
    collector.start()
    wait_for_sync(lambda: collector.component("seq")["sent_events"] > 20000, timeout=20)
    started = time.monotonic()
    collector.signal(signal.SIGTERM)
    assert collector.wait() == 0
    assert time.monotonic() - started < 5  # well inside the 10 s grace, though the destination is down
    assert "loss ledger" not in collector.stderr()

    # Back up, nothing new to send: everything generated before the stop arrives, without a gap.
    outage.unlink()
    collector.write_config(config.replace("    checkpoint: true", "    checkpoint: true\n    count: 0"))
    collector.start(wait_ready=False)
    assert collector.wait() == 0
    got = sorted(set(delivered(collector.workdir / "delivered.jsonl")))
    assert got == list(range(len(got))) and len(got) > 20000
    checkpoint = json.loads((collector.workdir / "data" / "components" / "seq" / "checkpoint.json").read_text())
    assert checkpoint["next_sequence"] == len(got)  # the input's position matches what was made durable
