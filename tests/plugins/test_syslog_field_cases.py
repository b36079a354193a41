"""Syslog as the field sends it: one table of lines from the RFCs' examples and of the shapes rsyslog's pmrfc3164
accepts (Cisco, Juniper, BSD, busybox, Windows agents, relays), each with the record this parser must give.

For RFC 3164 the expected fields are the ones rsyslog's default parser finds (HOST only when the word looks like a
host name and is followed by a space; TAG up to the first `:` or space), written here from its documented
behaviour, not copied from its tests. One difference on purpose: rsyslog keeps the space that follows TAG at the
start of MSG; records here never start `message` with that one separating space.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest

from collector_plugins.inputs.syslog.parser import SyslogParser


def local(year: int, month: int, day: int, h: int, m: int, s: int) -> float:
    return time.mktime((year, month, day, h, m, s, 0, 0, -1))


RECEIVED = local(2026, 11, 26, 12, 0, 0)


class Case(NamedTuple):
    name: str
    text: str
    timestamp: float  # RECEIVED when the message has no usable time
    fields: dict[str, Any]  # every other field of the record


def rec(facility: str, severity: str, message: str, **fields: str) -> dict[str, Any]:
    return {"facility": facility, "severity": severity, "message": message, **fields}


IMPOSSIBLE = "impossible date"

CASES = [
    # -- RFC 3164 section 5.4 examples ---------------------------------------------------------------------------
    Case(
        "rfc3164_example_1",
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
        local(2026, 10, 11, 22, 14, 15),
        rec("auth", "crit", "'su root' failed for lonvick on /dev/pts/8", host="mymachine", app="su"),
    ),
    Case(
        "rfc3164_example_2_word_after_host_is_the_tag",
        "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
        local(2026, 2, 5, 17, 32, 18),
        rec("user", "notice", "the BFG!", host="10.0.0.99", app="Use"),
    ),
    Case(
        "rfc3164_example_3_zone_after_time_is_taken_as_host",
        "<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.",
        local(2026, 8, 24, 5, 34, 0),
        rec("local4", "notice", "mymachine myproc[10]: %% It's time to make the do-nuts.", host="CST", app="1987"),
    ),
    Case(
        "rfc3164_example_4_year_before_the_month",
        "<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
        local(1990, 10, 22, 10, 52, 1),
        rec("kern", "emerg", "10.1.2.3 sched[0]: That's All Folks!", host="TZ-6", app="scapegoat.dmz.example.org"),
    ),
    # -- BSD and Linux daemons -------------------------------------------------------------------------------------
    Case(
        "tag_with_pid",
        "<29>Jul 31 21:39:21 example-b example-gw[10538]: disconnect host=/192.0.2.1 in=3274",
        local(2026, 7, 31, 21, 39, 21),
        rec(
            "daemon", "notice", "disconnect host=/192.0.2.1 in=3274", host="example-b", app="example-gw", procid="10538"
        ),
    ),
    Case(
        "tag_with_parentheses_and_pid",
        "<38>Mar 27 19:06:53 source_server sshd(pam_unix)[12750]: session opened for user foo by (uid=0)",
        local(2026, 3, 27, 19, 6, 53),
        rec(
            "auth",
            "info",
            "session opened for user foo by (uid=0)",
            host="source_server",
            app="sshd(pam_unix)",
            procid="12750",
        ),
    ),
    Case(
        "tag_with_slash",
        "<22>Nov 26 11:59:59 mail1 postfix/smtpd[3141]: connect from unknown[192.0.2.7]",
        local(2026, 11, 26, 11, 59, 59),
        rec("mail", "info", "connect from unknown[192.0.2.7]", host="mail1", app="postfix/smtpd", procid="3141"),
    ),
    Case(
        "long_numeric_tag",
        "<38>Mar 27 19:06:53 source_server 0123456780123456780123456780123456789: MSG part",
        local(2026, 3, 27, 19, 6, 53),
        rec("auth", "info", "MSG part", host="source_server", app="0123456780123456780123456780123456789"),
    ),
    Case(
        "no_space_after_the_tag_colon",
        "<13>Nov 26 11:59:59 h app:msg:with:colons",
        local(2026, 11, 26, 11, 59, 59),
        rec("user", "notice", "msg:with:colons", host="h", app="app"),
    ),
    Case(
        "no_host_as_local_senders_write",
        "<30>Nov 26 11:59:01 sshd[4242]: Accepted publickey for admin",
        local(2026, 11, 26, 11, 59, 1),
        rec("daemon", "info", "Accepted publickey for admin", app="sshd", procid="4242"),
    ),
    Case(
        "busybox_logger_no_host_user_as_tag",
        "<13>Nov 26 11:58:00 root: hello from busybox",
        local(2026, 11, 26, 11, 58, 0),
        rec("user", "notice", "hello from busybox", app="root"),
    ),
    Case(
        "busybox_login_with_pid",
        "<86>Nov 26 11:58:00 login[2215]: root login on 'ttyS0'",
        local(2026, 11, 26, 11, 58, 0),
        rec("authpriv", "info", "root login on 'ttyS0'", app="login", procid="2215"),
    ),
    Case(
        "last_message_repeated_with_host",
        "<13>Nov 26 11:59:00 myhost last message repeated 3 times",
        local(2026, 11, 26, 11, 59, 0),
        rec("user", "notice", "message repeated 3 times", host="myhost", app="last"),
    ),
    Case(
        "last_message_repeated_without_host_reads_as_rsyslog_reads_it",
        "<46>Nov 26 11:59:00 last message repeated 3 times",
        local(2026, 11, 26, 11, 59, 0),
        rec("syslog", "info", "repeated 3 times", host="last", app="message"),
    ),
    Case(
        "mark_line",
        "<6>Feb 18 16:01:59 serverX -- MARK --",
        local(2026, 2, 18, 16, 1, 59),
        rec("kern", "info", "MARK --", host="serverX", app="--"),
    ),
    Case(
        "no_pri_but_a_timestamp_is_user_notice",
        "Feb 18 16:01:59 serverX -- MARK --",
        local(2026, 2, 18, 16, 1, 59),
        rec("user", "notice", "MARK --", host="serverX", app="--"),
    ),
    Case(
        "host_only",
        "<14>Aug 30 23:00:05 X4711",
        local(2026, 8, 30, 23, 0, 5),
        rec("user", "info", "", host="X4711"),
    ),
    Case(
        "host_and_space_only",
        "<14>Aug 30 23:00:05 X4711 ",
        local(2026, 8, 30, 23, 0, 5),
        rec("user", "info", "", host="X4711"),
    ),
    Case("timestamp_only", "<14>Aug 30 23:00:05 ", local(2026, 8, 30, 23, 0, 5), rec("user", "info", "")),
    Case(
        "tag_without_colon_and_no_message",
        "<14>Aug 30 23:00:05 X4711 AAAAAAAAAAAAAAAAAAAAAAAA",
        local(2026, 8, 30, 23, 0, 5),
        rec("user", "info", "", host="X4711", app="AAAAAAAAAAAAAAAAAAAAAAAA"),
    ),
    Case(
        "malformed_tag_from_real_life",
        '<131>Oct  8 23:05:06 10.321.1.123 05",result_code=200,b',
        local(2026, 10, 8, 23, 5, 6),
        rec("local0", "err", "", host="10.321.1.123", app='05",result_code=200,b'),
    ),
    Case(
        "windows_agent_with_tabs",
        "<141>Mar 10 09:30:20 zuse.example.local MSWinEventLog\t1\tSecurity\t563\tWed Mar 10 09:30:15 2010\t538",
        local(2026, 3, 10, 9, 30, 20),
        rec(
            "local1",
            "notice",
            "Mar 10 09:30:15 2010\t538",
            host="zuse.example.local",
            app="MSWinEventLog\t1\tSecurity\t563\tWed",
        ),
    ),
    Case(
        "eight_bit_text_and_upper_case_month",
        "<6>AUG 10 22:18:24 host tag This msg contains 8-bit chars: äöü",
        local(2026, 8, 10, 22, 18, 24),
        rec("kern", "info", "This msg contains 8-bit chars: äöü", host="host", app="tag"),
    ),
    Case(
        "tag_that_is_not_a_host_name_and_no_host",
        "<175>Oct 16 23:47:31 #001 MSWinEventLog 0\tSecurity\t19023582",
        local(2026, 10, 16, 23, 47, 31),
        rec("local5", "debug", "MSWinEventLog 0\tSecurity\t19023582", app="#001"),
    ),
    Case(
        "host_then_nothing_with_a_cisco_year",
        "<14>Jan  6 2009 15:22:26 localhost ",
        local(2009, 1, 6, 15, 22, 26),
        rec("user", "info", "", host="localhost"),
    ),
    Case(
        "rfc3339_host_and_space_only",
        "<14>2010-08-30T23:00:05Z X4711 ",
        datetime(2010, 8, 30, 23, 0, 5, tzinfo=UTC).timestamp(),
        rec("user", "info", "", host="X4711"),
    ),
    Case(
        "rfc3339_only",
        "<14>2010-08-30T23:00:05Z",
        datetime(2010, 8, 30, 23, 0, 5, tzinfo=UTC).timestamp(),
        rec("user", "info", ""),
    ),
    # -- timestamp variants ----------------------------------------------------------------------------------------
    Case(
        "day_not_padded",
        "<38>Mar 7 19:06:53 example tag: testmessage",
        local(2026, 3, 7, 19, 6, 53),
        rec("auth", "info", "testmessage", host="example", app="tag"),
    ),
    Case(
        "space_before_the_timestamp",
        "<38> Mar  7 19:06:53 example tag: testmessage",
        local(2026, 3, 7, 19, 6, 53),
        rec("auth", "info", "testmessage", host="example", app="tag"),
    ),
    Case(
        "colon_after_the_time",
        "<38>Mar 7 19:06:53: example tag: testmessage",
        local(2026, 3, 7, 19, 6, 53),
        rec("auth", "info", "testmessage", host="example", app="tag"),
    ),
    Case(
        "year_before_the_time_and_a_colon",
        "<38>Mar 7 2008 19:06:53: example tag: testmessage",
        local(2008, 3, 7, 19, 6, 53),
        rec("auth", "info", "testmessage", host="example", app="tag"),
    ),
    Case(
        "cisco_year_and_no_host",
        "<189>Jan  6 2009 15:22:26: %SYS-5-CONFIG_I: Configured from console by vty0",
        local(2009, 1, 6, 15, 22, 26),
        rec("local7", "notice", "Configured from console by vty0", app="%SYS-5-CONFIG_I"),
    ),
    Case(
        "cisco_milliseconds",
        "<187>Mar  1 18:48:50.483 router7 %LINEPROTO-5-UPDOWN: Line protocol on Gi0/1, changed state to down",
        local(2026, 3, 1, 18, 48, 50) + 0.483,
        rec(
            "local7",
            "err",
            "Line protocol on Gi0/1, changed state to down",
            host="router7",
            app="%LINEPROTO-5-UPDOWN",
        ),
    ),
    Case(
        "cisco_sequence_number_as_tag",
        "<190>Mar 12 08:15:02 core-sw1 1423: Mar 12 08:15:01.882: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up",
        local(2026, 3, 12, 8, 15, 2),
        rec(
            "local7",
            "info",
            "Mar 12 08:15:01.882: %LINK-3-UPDOWN: Interface Gi0/1, changed state to up",
            host="core-sw1",
            app="1423",
        ),
    ),
    Case(
        "cisco_sequence_number_without_timestamp_is_all_message",
        "<189>123: *Mar  1 18:48:50.483 UTC: %SYS-5-CONFIG_I: Configured",
        RECEIVED,
        rec("local7", "notice", "123: *Mar  1 18:48:50.483 UTC: %SYS-5-CONFIG_I: Configured"),
    ),
    Case(
        "pix_ip_host",
        "<167>Mar  6 16:57:54 172.20.245.8 %PIX-7-710005: UDP request discarded from SERVER1/2741",
        local(2026, 3, 6, 16, 57, 54),
        rec("local4", "debug", "UDP request discarded from SERVER1/2741", host="172.20.245.8", app="%PIX-7-710005"),
    ),
    Case(
        "juniper_bsd",
        "<28>Mar 11 14:19:05 mx960-re0 mib2d[1624]: SNMP_TRAP_LINK_DOWN: ifIndex 548, ifOperStatus down(2)",
        local(2026, 3, 11, 14, 19, 5),
        rec(
            "daemon",
            "warning",
            "SNMP_TRAP_LINK_DOWN: ifIndex 548, ifOperStatus down(2)",
            host="mx960-re0",
            app="mib2d",
            procid="1624",
        ),
    ),
    Case(
        "year_after_the_time_is_taken_as_host_as_rsyslog_does",
        "<6>AUG 10 22:18:24 2009  netips-warden2-p [audit] user=x",
        local(2026, 8, 10, 22, 18, 24),
        rec("kern", "info", "netips-warden2-p [audit] user=x", host="2009"),
    ),
    Case(
        "brocade_year_first",
        "<13>2026 Nov 26 11:00:00 switch1 raslogd: port 3 up",
        local(2026, 11, 26, 11, 0, 0),
        rec("user", "notice", "port 3 up", host="switch1", app="raslogd"),
    ),
    Case(
        "rfc3339_in_a_bsd_line",
        "<14>2010-08-30T23:00:05Z X4711 app[9]: iso stamped",
        datetime(2010, 8, 30, 23, 0, 5, tzinfo=UTC).timestamp(),
        rec("user", "info", "iso stamped", host="X4711", app="app", procid="9"),
    ),
    Case("no_timestamp_is_all_message", "<13>hello world", RECEIVED, rec("user", "notice", "hello world")),
    Case(
        "leap_second",
        "<13>Dec 31 2016 23:59:60 host app: leap",
        local(2017, 1, 1, 0, 0, 0),
        rec("user", "notice", "leap", host="host", app="app"),
    ),
    Case(
        "february_29_of_a_leap_year",
        "<13>Feb 29 2024 10:00:00 host app: ok",
        local(2024, 2, 29, 10, 0, 0),
        rec("user", "notice", "ok", host="host", app="app"),
    ),
    # -- impossible dates are flagged, never moved into another day ------------------------------------------------
    Case(
        "february_30",
        "<13>Feb 30 10:00:00 host app: m",
        RECEIVED,
        rec("user", "notice", "m", host="host", app="app", parse_error=f"{IMPOSSIBLE} 'Feb 30 10:00:00'"),
    ),
    Case(
        "hour_24",
        "<13>Feb  5 24:00:00 host app: m",
        RECEIVED,
        rec("user", "notice", "m", host="host", app="app", parse_error=f"{IMPOSSIBLE} 'Feb  5 24:00:00'"),
    ),
    Case(
        "minute_60_in_a_variant",
        "<13>Feb 5 10:60:00 host app: m",
        RECEIVED,
        rec("user", "notice", "m", host="host", app="app", parse_error=f"{IMPOSSIBLE} 'Feb 5 10:60:00'"),
    ),
    Case(
        "february_29_of_a_common_year",
        "<13>Feb 29 2025 10:00:00 host app: m",
        RECEIVED,
        rec("user", "notice", "m", host="host", app="app", parse_error=f"{IMPOSSIBLE} 'Feb 29 2025 10:00:00'"),
    ),
    Case(
        "rfc5424_impossible_date",
        "<13>1 2026-02-30T10:00:00Z h a - - - m",
        RECEIVED,
        rec("user", "notice", "m", host="h", app="a", parse_error="invalid timestamp '2026-02-30T10:00:00Z'"),
    ),
    # -- RFC 5424 ---------------------------------------------------------------------------------------------------
    Case(
        "rfc5424_example_1",
        "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \ufeff'su root' failed for lonvick",
        datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC).timestamp(),
        rec("auth", "crit", "'su root' failed for lonvick", host="mymachine.example.com", app="su", msgid="ID47"),
    ),
    Case(
        "rfc5424_malformed_structured_data_keeps_the_rest",
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource= "Application" eventID="1011"] \ufeffAn application event log entry...',
        datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC).timestamp(),
        rec(
            "local4",
            "notice",
            "An application event log entry...",
            host="mymachine.example.com",
            app="evntslog",
            msgid="ID47",
            structured_data_raw='[exampleSDID@32473 iut="3" eventSource= "Application" eventID="1011"]',
            parse_error="malformed structured data",
        ),
    ),
    Case(
        "rfc5424_malformed_structured_data_of_two_elements_and_no_message",
        '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
        'eventSource= "Application" eventID="1011"][examplePriority@32473 class="high"]',
        datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC).timestamp(),
        rec(
            "local4",
            "notice",
            "",
            host="mymachine.example.com",
            app="evntslog",
            msgid="ID47",
            structured_data_raw='[exampleSDID@32473 iut="3" eventSource= "Application" eventID="1011"]'
            '[examplePriority@32473 class="high"]',
            parse_error="malformed structured data",
        ),
    ),
    Case(
        "rfc5424_other_version_keeps_the_fields",
        "<165>2 2003-10-11T22:14:15.003Z h app 42 ID1 - text",
        datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC).timestamp(),
        rec(
            "local4",
            "notice",
            "text",
            host="h",
            app="app",
            procid="42",
            msgid="ID1",
            parse_error="unsupported RFC 5424 version 2",
        ),
    ),
    Case(
        "rsyslog_protocol23_format",
        "<30>1 2026-11-26T11:59:58.123456+00:00 client1 myapp 77 - - hello over octet counting",
        datetime(2026, 11, 26, 11, 59, 58, 123456, tzinfo=UTC).timestamp(),
        rec("daemon", "info", "hello over octet counting", host="client1", app="myapp", procid="77"),
    ),
    Case(
        "juniper_structured",
        "<14>1 2026-11-26T11:59:58.123+01:00 srx1 RT_FLOW - RT_FLOW_SESSION_CREATE [junos@2636.1.1.1.2.40 "
        'source-address="10.0.0.1" destination-port="443"] session created',
        datetime(2026, 11, 26, 10, 59, 58, 123000, tzinfo=UTC).timestamp(),
        {
            **rec("user", "info", "session created", host="srx1", app="RT_FLOW", msgid="RT_FLOW_SESSION_CREATE"),
            "structured_data": {"junos@2636.1.1.1.2.40": {"source-address": "10.0.0.1", "destination-port": "443"}},
        },
    ),
]


def test_case_names_are_unique() -> None:
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_field_case(case: Case) -> None:
    parser = SyslogParser()
    record = parser.parse(case.text, RECEIVED)
    assert record.pop("timestamp") == pytest.approx(case.timestamp, abs=1e-6)
    assert record == case.fields
    assert parser.errors == int("parse_error" in case.fields)  # flagged records are counted, once


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_valid_pri_is_never_lost_even_when_cut_short(case: Case) -> None:
    """Every prefix of a line with a valid PRI keeps facility and severity (a header cut short by a length
    limit or a lost segment), and its text is not lost."""
    if not case.text.startswith("<"):
        return
    parser = SyslogParser()
    close = case.text.index(">")
    for end in range(close + 1, len(case.text) + 1):
        cut = case.text[:end]
        record = parser.parse(cut, RECEIVED)
        assert (record["facility"], record["severity"]) == (case.fields["facility"], case.fields["severity"]), cut
        if record.get("parse_error") == "RFC 5424 header is incomplete":
            assert record["message"] == cut
