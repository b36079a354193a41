"""The syslog parser: the RFCs' own examples, the forms real senders use, and fuzzing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector_plugins.inputs.syslog.parser import FACILITIES, MONTHS, SEVERITIES, SyslogParser

RECEIVED = 1_800_000_000.0


def parse(text: str, received: float = RECEIVED) -> dict:
    return SyslogParser().parse(text, received)


# -- RFC 5424 section 6.5 examples ----------------------------------------------------------------------


def test_rfc5424_example_1_no_structured_data() -> None:
    record = parse(
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - "
        "\ufeff'su root' failed for lonvick on /dev/pts/8"
    )
    assert record == {
        "timestamp": datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC).timestamp(),
        "message": "'su root' failed for lonvick on /dev/pts/8",
        "facility": "auth",
        "severity": "crit",
        "host": "mymachine.example.com",
        "app": "su",
        "msgid": "ID47",
    }


def test_rfc5424_example_2_offset_and_microseconds() -> None:
    record = parse(
        "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts."
    )
    expected = datetime(2003, 8, 24, 5, 14, 15, 3, tzinfo=timezone(timedelta(hours=-7))).timestamp()
    assert record["timestamp"] == pytest.approx(expected, abs=1e-6)
    assert (record["facility"], record["severity"]) == ("local4", "notice")
    assert (record["host"], record["app"], record["procid"]) == ("192.0.2.1", "myproc", "8710")
    assert "msgid" not in record and "structured_data" not in record
    assert record["message"] == "%% It's time to make the do-nuts."


def test_rfc5424_examples_3_and_4_structured_data() -> None:
    record = parse(
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"] \ufeffAn application event log entry...'
    )
    assert record["structured_data"] == {
        "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
    }
    assert record["message"] == "An application event log entry..."
    record = parse(
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]'
    )
    assert record["structured_data"]["examplePriority@32473"] == {"class": "high"}
    assert record["message"] == ""


def test_rfc5424_escapes_nil_values_and_missing_time() -> None:
    record = parse(r'<13>1 - - - - - [x@1 a="q\"uote" b="back\\slash" c="br\]acket" d=""] text')
    assert record == {
        "timestamp": RECEIVED,
        "message": "text",
        "facility": "user",
        "severity": "notice",
        "structured_data": {"x@1": {"a": 'q"uote', "b": "back\\slash", "c": "br]acket", "d": ""}},
    }


def test_rfc5424_malformed_structured_data_keeps_the_header_and_the_message() -> None:
    parser = SyslogParser()
    # A space after `=` (not allowed by the ABNF): the header, the SD text and MSG are all kept, and it is flagged.
    record = parser.parse('<13>1 - h a - - [x@1 a= "1" b="]"][y@1] rest of it', RECEIVED)
    assert record == {
        "timestamp": RECEIVED,
        "message": "rest of it",
        "facility": "user",
        "severity": "notice",
        "host": "h",
        "app": "a",
        "structured_data_raw": '[x@1 a= "1" b="]"][y@1]',
        "parse_error": "malformed structured data",
    }
    assert parser.errors == 1
    # An element never closed cannot be told from MSG: all of it is kept as SD text.
    record = parser.parse('<13>1 - h a - - [broken a="x] rest', RECEIVED)
    assert (record["message"], record["structured_data_raw"]) == ("", '[broken a="x] rest')
    assert parser.errors == 2


def test_rfc5424_incomplete_header_is_kept_whole() -> None:
    parser = SyslogParser()
    record = parser.parse("<13>1 2003-10-11T22:14:15Z onlyhost", RECEIVED)
    assert record == {
        "timestamp": RECEIVED,
        "message": "<13>1 2003-10-11T22:14:15Z onlyhost",
        "facility": "user",
        "severity": "notice",
        "parse_error": "RFC 5424 header is incomplete",
    }
    assert parser.errors == 1


# -- RFC 3164 -------------------------------------------------------------------------------------------


def local(year: int, month: int, day: int, h: int, m: int, s: int) -> float:
    return time.mktime((year, month, day, h, m, s, 0, 0, -1))


def test_rfc3164_examples() -> None:
    received = local(2026, 11, 26, 12, 0, 0)
    record = parse("<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8", received)
    assert record == {
        "timestamp": local(2026, 10, 11, 22, 14, 15),
        "message": "'su root' failed for lonvick on /dev/pts/8",
        "facility": "auth",
        "severity": "crit",
        "host": "mymachine",
        "app": "su",
    }
    # The RFC reads this as having no TAG; rsyslog (and so this parser) takes the word after HOST as TAG.
    record = parse("<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!", received)
    assert (record["host"], record["app"], record["message"], record["timestamp"]) == (
        "10.0.0.99",
        "Use",
        "the BFG!",
        local(2026, 2, 5, 17, 32, 18),
    )


def test_rfc3164_tag_with_pid_and_no_host_as_local_senders_write() -> None:
    record = parse("<30>Nov 26 17:00:01 sshd[4242]: Accepted publickey", local(2026, 11, 26, 17, 0, 2))
    assert (record["app"], record["procid"], record["message"]) == ("sshd", "4242", "Accepted publickey")
    assert (record["facility"], record["severity"]) == ("daemon", "info")
    assert "host" not in record


def test_rfc3164_year_rollover() -> None:
    # A December 31 message read just after midnight on January 1 is last year's.
    received = local(2027, 1, 1, 0, 0, 5)
    assert parse("<13>Dec 31 23:59:59 h app: m", received)["timestamp"] == local(2026, 12, 31, 23, 59, 59)
    assert parse("<13>Jan  1 00:00:01 h app: m", received)["timestamp"] == local(2027, 1, 1, 0, 0, 1)


def test_rfc3164_with_rfc3339_time_and_without_time() -> None:
    record = parse("<13>2023-01-01T00:00:00.500+00:00 host tag: iso stamped")
    assert record["timestamp"] == datetime(2023, 1, 1, 0, 0, 0, 500000, tzinfo=UTC).timestamp()
    assert (record["host"], record["app"], record["message"]) == ("host", "tag", "iso stamped")
    record = parse("<13>123 not a time")
    assert (record["timestamp"], record["message"]) == (RECEIVED, "123 not a time")


@pytest.mark.parametrize("text", ["plain text", "", "<>x", "<192>x", "<013>x", "<1a>x", "<13", "13> x"])
def test_not_syslog_is_kept_with_parse_error(text: str) -> None:
    parser = SyslogParser()
    record = parser.parse(text, RECEIVED)
    assert record == {"timestamp": RECEIVED, "message": text, "parse_error": "no valid <PRI> at the start"}
    assert parser.errors == 1


def test_every_priority_maps_to_names() -> None:
    for pri in range(192):
        record = parse(f"<{pri}>1 - - - - - -")
        assert record["facility"] == FACILITIES[pri // 8]
        assert record["severity"] == SEVERITIES[pri % 8]


# -- fuzzing ----------------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_gives_a_record(text: str) -> None:
    parser = SyslogParser()
    record = parser.parse(text, RECEIVED)
    assert isinstance(record["timestamp"], float)
    assert isinstance(record["message"], str)
    assert parser.errors == int("parse_error" in record)


header_chars = st.characters(min_codepoint=33, max_codepoint=126)
names = st.text(header_chars, min_size=1, max_size=20).filter(lambda s: s != "-")
sd_names = st.text(
    st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=' ="]'), min_size=1, max_size=8
)


@settings(max_examples=300, deadline=None)
@given(
    pri=st.integers(0, 191),
    moment=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    host=names,
    app=names,
    procid=names,
    msgid=names,
    sd=st.dictionaries(sd_names, st.dictionaries(sd_names, st.text(max_size=10), max_size=3), max_size=3),
    message=st.text(max_size=80),
)
def test_generated_rfc5424_messages_round_trip(
    pri: int,
    moment: datetime,
    host: str,
    app: str,
    procid: str,
    msgid: str,
    sd: dict[str, dict[str, str]],
    message: str,
) -> None:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")

    sd_text = "".join(
        "[" + sid + "".join(f' {k}="{escape(v)}"' for k, v in params.items()) + "]" for sid, params in sd.items()
    )
    stamp = moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
    text = f"<{pri}>1 {stamp} {host} {app} {procid} {msgid} {sd_text or '-'} {message}"
    record = SyslogParser().parse(text, RECEIVED)
    assert "parse_error" not in record
    assert record["timestamp"] == pytest.approx(moment.timestamp(), abs=1e-6)
    assert (record["host"], record["app"], record["procid"], record["msgid"]) == (host, app, procid, msgid)
    assert record.get("structured_data", {}) == sd
    assert record["message"] == message.removeprefix("\ufeff")


@settings(max_examples=200, deadline=None)
@given(
    pri=st.integers(0, 191),
    month=st.sampled_from(MONTHS),
    day=st.integers(1, 28),
    clock=st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)),
    host=st.from_regex(r"[A-Za-z0-9._-]{0,11}[A-Za-z0-9]", fullmatch=True),
    app=st.text(st.characters(min_codepoint=48, max_codepoint=122, exclude_characters=":[]"), min_size=1, max_size=12),
    pid=st.integers(1, 99999),
    message=st.text(max_size=80),
)
def test_generated_rfc3164_messages_round_trip(
    pri: int, month: str, day: int, clock: tuple[int, int, int], host: str, app: str, pid: int, message: str
) -> None:
    h, m, s = clock
    text = f"<{pri}>{month} {day:2d} {h:02d}:{m:02d}:{s:02d} {host} {app}[{pid}]: {message}"
    record = SyslogParser().parse(text, local(2026, 12, 31, 12, 0, 0))
    assert (record["host"], record["app"], record["procid"], record["message"]) == (host, app, str(pid), message)
    assert time.localtime(record["timestamp"])[1:6] == (MONTHS.index(month) + 1, day, h, m, s)


@settings(max_examples=300, deadline=None)
@given(
    pri=st.integers(0, 191),
    month=st.sampled_from(MONTHS),
    month_case=st.sampled_from([str, str.upper, str.lower]),
    day=st.integers(1, 28),
    padded=st.booleans(),
    year=st.one_of(st.none(), st.integers(1990, 2030)),
    clock=st.tuples(st.integers(0, 23), st.integers(0, 59), st.integers(0, 59)),
    fraction=st.sampled_from(["", ".5", ".483"]),
    colon=st.booleans(),
    host=st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9._-]{0,11}[A-Za-z0-9]", fullmatch=True)),
    app=st.from_regex(r"[A-Za-z%][A-Za-z0-9_%/()-]{0,15}", fullmatch=True),
    pid=st.one_of(st.none(), st.integers(1, 99999)),
    message=st.text(st.characters(blacklist_categories=["Cs"]), max_size=60),
)
def test_generated_rfc3164_variants_devices_send(
    pri: int,
    month: str,
    month_case: Any,
    day: int,
    padded: bool,
    year: int | None,
    clock: tuple[int, int, int],
    fraction: str,
    colon: bool,
    host: str | None,
    app: str,
    pid: int | None,
    message: str,
) -> None:
    """Every combination of the timestamp variants rsyslog accepts, with or without HOST and PID."""
    h, m, s = clock
    stamp = f"{month_case(month)} {day:2d}" if padded else f"{month_case(month)} {day}"
    stamp += f" {year}" if year else ""
    stamp += f" {h:02d}:{m:02d}:{s:02d}{fraction}{':' if colon else ''}"
    tag = f"{app}[{pid}]:" if pid else f"{app}:"
    text = f"<{pri}>{stamp} {host + ' ' if host else ''}{tag} {message}"
    parser = SyslogParser()
    record = parser.parse(text, local(2026, 12, 31, 12, 0, 0))
    assert "parse_error" not in record and parser.errors == 0
    assert (record["facility"], record["severity"]) == (FACILITIES[pri >> 3], SEVERITIES[pri & 7])
    assert (record.get("host"), record["app"], record.get("procid")) == (host, app, str(pid) if pid else None)
    assert record["message"] == message
    moment = time.localtime(record["timestamp"])
    assert moment[1:6] == (MONTHS.index(month) + 1, day, h, m, s)
    assert moment[0] == (year or 2026)
    assert record["timestamp"] % 1 == pytest.approx(float(fraction or 0), abs=1e-6)
