"""The `journald` input: its journalctl command line and entry parsing, then against a real systemd-journald
started by the test (tests/peers/journald.py): fields, unit and match filters, and the acknowledged cursor
across restarts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from collector.api import InputContext
from collector.testing import wait_for
from collector_plugins.inputs.journald.input import Journald, JournaldConfig, journalctl_command
from tests.peers.journald import Journald as JournaldPeer
from tests.peers.journald import available
from tests.plugins.receiver_support import Sink, make_context, running

CURSOR = "s=9eb8e8afe1;i=15d;b=525649f9da;m=2415bab7f;t=66131d750eb9c;x=b93c327fc1"


def config(**options: Any) -> JournaldConfig:
    return JournaldConfig(type="journald", **options)


def test_command_line() -> None:
    base = ["journalctl", "--output=json", "--follow", "--all", "--no-pager", "--quiet"]
    assert journalctl_command(config(), None) == [*base, "--no-tail", "--boot"]
    assert journalctl_command(config(read_from="beginning"), None) == [*base, "--no-tail"]
    assert journalctl_command(config(read_from="end"), None) == [*base, "--lines=0"]
    full = config(
        directory="/j",
        units=["a.service", "b.service"],
        matches=["PRIORITY=3", "+", "_TRANSPORT=kernel"],
        fields=["_PID"],
        journalctl="/usr/bin/journalctl",
    )
    assert journalctl_command(full, CURSOR) == [
        "/usr/bin/journalctl",
        *base[1:],
        "--directory=/j",
        f"--after-cursor={CURSOR}",
        "--no-tail",
        "--output-fields=MESSAGE,_PID",
        "--unit=a.service",
        "--unit=b.service",
        "PRIORITY=3",
        "+",
        "_TRANSPORT=kernel",
    ]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"matches": ["priority=3"]}, "FIELD=VALUE"),
        ({"matches": ["--since=today"]}, "FIELD=VALUE"),
        ({"units": ["--boot"]}, "invalid unit"),
        ({"fields": ["lower"]}, "invalid journal field"),
        ({"read_from": "tail"}, "read_from"),
    ],
)
def test_config_errors(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        config(**options)


def entry(cursor: str = CURSOR, **fields: Any) -> bytes:
    return orjson.dumps({"__CURSOR": cursor, "__REALTIME_TIMESTAMP": "1795716553960348", **fields})


def test_entries_become_records(tmp_path: Path) -> None:
    sink = Sink()
    plugin = Journald(config(), make_context(tmp_path, sink))
    lines = [
        entry(MESSAGE="plain", PRIORITY="6", _PID="42", __MONOTONIC_TIMESTAMP="1"),
        entry(MESSAGE=list(b"bin\xffary"), TAGS=["a", "b"], BLOB=list(b"\x00\x01")),
        entry(OTHER="no message"),
        b"not json",
        b'{"MESSAGE": "no cursor"}',
        b"",
    ]
    records, cursor = plugin._records(lines)
    assert cursor == CURSOR
    assert records == [
        {"timestamp": 1795716553.960348, "message": "plain", "PRIORITY": "6", "_PID": "42"},
        {"timestamp": 1795716553.960348, "message": "bin\ufffdary", "TAGS": ["a", "b"], "BLOB": "\x00\x01"},
        {"timestamp": 1795716553.960348, "message": "", "OTHER": "no message"},
    ]
    assert plugin.invalid_lines == 2 and sink.losses["invalid_entry"] == 2


def test_fields_filter(tmp_path: Path) -> None:
    plugin = Journald(config(fields=["_PID"]), make_context(tmp_path, Sink()))
    records, _ = plugin._records([entry(MESSAGE="m", _PID="1", _COMM="sh")])
    assert records == [{"timestamp": 1795716553.960348, "message": "m", "_PID": "1"}]


def test_a_corrupt_checkpoint_starts_from_read_from(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    plugin = Journald(config(), make_context(tmp_path, Sink()))
    plugin.checkpoint.path.write_text('{"cursor": "garbage"}')
    assert plugin.load_cursor() is None
    plugin.checkpoint.path.write_text("{not json")
    assert plugin.load_cursor() is None
    assert len([r for r in caplog.records if "checkpoint" in r.getMessage()]) == 2


async def test_journalctl_exit_fails_the_input_with_its_status(tmp_path: Path) -> None:
    sink = Sink()
    ctx = make_context(tmp_path, sink)
    plugin = Journald(config(journalctl="false"), ctx)
    with pytest.raises(RuntimeError, match="journalctl exited with status 1"):
        await asyncio.wait_for(plugin.run(ctx), 10)


# -- against a real systemd-journald -------------------------------------------------------------------------

WHY_NOT = available()
needs_journald = pytest.mark.skipif(bool(WHY_NOT), reason=WHY_NOT or "")


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[JournaldPeer]:
    peer = JournaldPeer(tmp_path / "journald")
    try:
        yield peer
    finally:
        peer.stop()


def reader(tmp_path: Path, journal: JournaldPeer, sink: Sink, **options: Any) -> tuple[Journald, InputContext]:
    options.setdefault("read_from", "beginning")
    ctx = make_context(tmp_path / "collector", sink)
    return Journald(config(directory=str(journal.store), **options), ctx), ctx


async def following(journal: JournaldPeer, sink: Sink) -> None:
    """The reader is following the journal: an entry written now reaches `sink` (probes are not `ours`)."""

    async def probe() -> bool:
        journal.cat("probe", ["probe"])
        try:
            await wait_for(lambda: any(r.get("SYSLOG_IDENTIFIER") == "probe" for r in sink.records), timeout=0.5)
        except TimeoutError:
            return False
        return True

    await wait_for(probe, timeout=10)


def ours(sink: Sink) -> list[str]:
    return [r["message"] for r in sink.records if r.get("SYSLOG_IDENTIFIER") in ("app", "native", "unit", "other")]


@needs_journald
async def test_entries_from_systemd_cat_and_logger_arrive_with_their_fields(
    tmp_path: Path, journal: JournaldPeer
) -> None:
    sink = Sink()
    plugin, ctx = reader(tmp_path, journal, sink)
    async with running(plugin, ctx):
        journal.cat("app", ["first line", "second line"], priority="warning")
        journal.logger({"MESSAGE": "native entry", "SYSLOG_IDENTIFIER": "native", "PRIORITY": "3", "ORDER_ID": "A-17"})
        await wait_for(lambda: len(ours(sink)) == 3, timeout=10)
    first, _, native = [r for r in sink.records if r.get("SYSLOG_IDENTIFIER") in ("app", "native")]
    assert (first["message"], first["PRIORITY"], first["_TRANSPORT"]) == ("first line", "4", "stdout")
    assert first["_PID"].isdigit() and first["_HOSTNAME"]
    assert (native["message"], native["PRIORITY"], native["ORDER_ID"], native["_TRANSPORT"]) == (
        "native entry",
        "3",
        "A-17",
        "journal",
    )
    assert abs(native["timestamp"] - first["timestamp"]) < 10
    assert not any(k.startswith("__") for r in sink.records for k in r)


@needs_journald
async def test_unit_and_match_filters(tmp_path: Path, journal: JournaldPeer) -> None:
    by_unit, by_match = Sink(), Sink()
    unit_plugin, unit_ctx = reader(tmp_path / "u", journal, by_unit, units=["app.service"])
    match_plugin, match_ctx = reader(tmp_path / "m", journal, by_match, matches=["SYSLOG_IDENTIFIER=other"])
    async with running(unit_plugin, unit_ctx), running(match_plugin, match_ctx):
        # A root writer may name the unit an entry is about (journalctl --unit matches OBJECT_SYSTEMD_UNIT).
        journal.logger({"MESSAGE": "for the unit", "SYSLOG_IDENTIFIER": "unit", "OBJECT_SYSTEMD_UNIT": "app.service"})
        journal.logger({"MESSAGE": "another unit", "SYSLOG_IDENTIFIER": "unit", "OBJECT_SYSTEMD_UNIT": "db.service"})
        journal.cat("other", ["matched"])
        journal.cat("app", ["not matched"])
        # A last entry both readers match: once it is through, so is every entry written before it.
        journal.logger({"MESSAGE": "end", "SYSLOG_IDENTIFIER": "other", "OBJECT_SYSTEMD_UNIT": "app.service"})
        await wait_for(lambda: by_unit.messages()[-1:] == by_match.messages()[-1:] == ["end"], timeout=10)
    assert by_unit.messages()[:-1] == ["for the unit"]
    assert by_match.messages()[:-1] == ["matched"]


@needs_journald
async def test_restarts_between_writes_deliver_every_entry_once(tmp_path: Path, journal: JournaldPeer) -> None:
    delivered: list[str] = []
    for round_ in range(3):
        journal.cat("app", [f"round {round_} entry {i}" for i in range(50)])
        sink = Sink()
        plugin, ctx = reader(tmp_path, journal, sink, matches=["SYSLOG_IDENTIFIER=app"])
        async with running(plugin, ctx):
            last = f"round {round_} entry 49"
            # The journal is read in order: an entry read twice would have come before the round's last one.
            await wait_for(lambda sink=sink, last=last: last in ours(sink), timeout=10)
        await plugin.drained()
        delivered += ours(sink)
    assert delivered == [f"round {r} entry {i}" for r in range(3) for i in range(50)]
    assert plugin.checkpoint.load() is not None


@needs_journald
async def test_unacknowledged_entries_are_read_again(tmp_path: Path, journal: JournaldPeer) -> None:
    journal.cat("app", ["safe", "pending"])
    sink = Sink()
    plugin, ctx = reader(tmp_path, journal, sink)
    sink.release_acks = False
    async with running(plugin, ctx):
        await wait_for(lambda: "pending" in ours(sink), timeout=10)
        sink.release_held()  # both acknowledged: the cursor moves past "pending"
        journal.cat("app", ["late"])
        await wait_for(lambda: "late" in ours(sink), timeout=10)  # held: never acknowledged
    await plugin.drained()
    again = Sink()
    plugin, ctx = reader(tmp_path, journal, again)
    async with running(plugin, ctx):
        await wait_for(lambda: "late" in ours(again), timeout=10)  # in order: "safe" or "pending" would be first
    assert ours(again) == ["late"]


@needs_journald
async def test_read_from_end_skips_what_is_already_there(tmp_path: Path, journal: JournaldPeer) -> None:
    journal.cat("app", ["old"])
    sink = Sink()
    plugin, ctx = reader(tmp_path, journal, sink, read_from="end")
    async with running(plugin, ctx):
        await following(journal, sink)
        journal.cat("app", ["new"])
        await wait_for(lambda: "new" in ours(sink), timeout=10)
    assert ours(sink) == ["new"]
