"""Fuzzing every parser: any input gives a result or the parser's documented exception, nothing else.

One settings profile for all (`PARSER_FUZZ`: `EXAMPLES` examples each, no
deadline) keeps each parser to about a second or two. The strategies build
inputs close to the real formats (keys, escapes, headers, JSON documents) with
hostile parts mixed in, because purely random text rarely reaches the code
past a format's first check; raw random bytes are tried too. The docker and
cri formats have their own file, tests/plugins/test_container_formats_fuzz.py.

| parser | documented outcome for bad input |
|---|---|
| logfmt (`processors/parse_logfmt/logfmt.py`, `parse_logfmt`) | `LogfmtError`; the processor tags the record |
| EMF (`common/metrics/emf.py`, the `emf` input) | repaired, split or counted; never an exception |
| forward (`inputs/forward/protocol.py`) | `ProtocolError` (the connection closes); a bad event is counted |
| syslog (`inputs/syslog/parser.py`) | a record with `parse_error` |
| statsd (`inputs/statsd/protocol.py`) | the line is counted as malformed |
| X-Ray datagram (`inputs/xray/datagram.py`) | a reason string |
| timestamps (`common/timestamps.py`, `parse_timestamp`) | None; the processor tags the record |
| `parse_regex`, `parse_json` | the record is kept and tagged |
"""

from __future__ import annotations

import logging
import math
from datetime import UTC
from pathlib import Path
from typing import Any

import msgpack
import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from collector.api import ComponentContext, HostFacts
from collector.events import LOGS, Batch
from collector_plugins.common.metrics.aggregator import Aggregator
from collector_plugins.common.metrics.emf import EmfChecker
from collector_plugins.common.timestamps import NAMED_FORMATS, timestamp_parser
from collector_plugins.inputs.emf.input import EmfConfig, EmfInput
from collector_plugins.inputs.forward import protocol as fp
from collector_plugins.inputs.statsd.protocol import StatsdParser
from collector_plugins.inputs.syslog.parser import SyslogParser
from collector_plugins.inputs.xray.datagram import HEADER, parse_datagram
from collector_plugins.processors.parse_json.processor import ParseJson, ParseJsonConfig
from collector_plugins.processors.parse_logfmt.logfmt import LogfmtError, parse_logfmt
from collector_plugins.processors.parse_logfmt.processor import ParseLogfmt, ParseLogfmtConfig
from collector_plugins.processors.parse_regex.processor import ParseRegex, ParseRegexConfig
from collector_plugins.processors.parse_timestamp.processor import ParseTimestamp, ParseTimestampConfig

EXAMPLES = 300
PARSER_FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

LOG = logging.getLogger("test.fuzz")


def context(tmp_path: Path | None = None) -> ComponentContext:
    return ComponentContext("fuzz", LOG, tmp_path or Path("/nonexistent"), HostFacts("h"))


# Numbers as they arrive in text: the hostile ones first, so that shrinking favours them.
number_texts = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-Infinity", "1e300", "-1e308", "1e999", "0x10", "+5", "-0", "", "."]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "\ufffd", "\ud7ff", "\U0010ffff", "\u2028", "\t", " ", "=", '"', "\\", "|", ":", "#"]),
    st.binary(max_size=20).map(lambda b: b.decode("utf-8", "replace")),
)


# ----------------------------------------------------------------------------------------------- logfmt

escapes = st.one_of(
    st.sampled_from(
        ["\\u", "\\U", "\\x", "\\", '\\"', "\\\\", "\\n", "\\777", "\\400", "\\q", "\\ud83d", "\\Uffffffff"]
    ),
    st.from_regex(r"\\[uUx0-7][0-9a-fA-F]{0,9}", fullmatch=True),
)
logfmt_keys = st.text(
    alphabet=st.characters(blacklist_characters=' \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0="'), min_size=1, max_size=8
)
quoted = st.lists(st.one_of(escapes, nasty_text), max_size=6).map(lambda parts: '"' + "".join(parts) + '"')
bare = st.text(alphabet=st.characters(blacklist_characters=' \t\n"'), max_size=10)
pairs = st.tuples(logfmt_keys, st.sampled_from(["=", ""]), st.one_of(quoted, bare)).map(
    lambda p: p[0] + (p[1] + p[2] if p[1] else "")
)
logfmt_lines = st.one_of(st.lists(st.one_of(pairs, nasty_text), max_size=8).map(" ".join), st.text())


@PARSER_FUZZ
@given(text=logfmt_lines, bare_keys=st.booleans())
def test_logfmt_decoder(text: str, bare_keys: bool) -> None:
    try:
        fields = parse_logfmt(text, bare_keys)
    except LogfmtError:
        return
    assert all(type(k) is str and (type(v) is str or v is True) for k, v in fields.items())


@PARSER_FUZZ
@given(messages=st.lists(st.one_of(logfmt_lines, st.binary(max_size=60)), min_size=1, max_size=10))
def test_parse_logfmt_processor(messages: list[Any]) -> None:
    out = ParseLogfmt(ParseLogfmtConfig(type="parse_logfmt", inputs=["x"], drop_field=True), context()).process(
        Batch(LOGS, [{"timestamp": 1.0, "message": m} for m in messages])
    )
    assert out is not None and len(out.records) == len(messages)


# ----------------------------------------------------------------------------------------------- EMF

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e300, -1e300, 1e19, 5e-324, 0.5]),
    nasty_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(nasty_text, inner, max_size=4),
    max_leaves=12,
)
names = st.sampled_from(["a", "b", "S", "Latency", "_aws", "", "x" * 1100])
units = st.sampled_from(["Milliseconds", "Count", "Parsecs", "", None, 3])
definitions = st.fixed_dictionaries(
    {"Name": st.one_of(names, json_scalars)},
    optional={"Unit": units, "StorageResolution": st.sampled_from([1, 60, 30, 1.0, "1", None])},
)
directives = st.fixed_dictionaries(
    {},
    optional={
        "Namespace": st.one_of(st.sampled_from(["App", "AWS/EC2", ":x", "", "n" * 300]), json_scalars),
        "Dimensions": st.one_of(
            st.lists(st.lists(st.one_of(names, json_scalars), max_size=35), max_size=3), json_values
        ),
        "Metrics": st.one_of(st.lists(st.one_of(definitions, json_values), max_size=5), json_values),
    },
)
metric_values = st.one_of(
    json_scalars,
    st.lists(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**63), 2**63)), max_size=120),
    st.fixed_dictionaries(
        {
            k: st.one_of(st.floats(allow_nan=False, allow_infinity=False), json_scalars)
            for k in ("Count", "Sum", "Min", "Max")
        },
        optional={
            "Values": st.lists(st.floats(-1e300, 1e300), max_size=5),
            "Counts": st.lists(st.floats(-1, 1e300), max_size=5),
        },
    ),
)
emf_docs = st.fixed_dictionaries(
    {},
    optional={
        "_aws": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "Timestamp": st.one_of(json_scalars, st.sampled_from([1e300, -5, 1.5e12, 253402300800000])),
                    "CloudWatchMetrics": st.one_of(
                        st.lists(st.one_of(directives, json_values), max_size=3), json_values
                    ),
                    "LogGroupName": json_scalars,
                },
            ),
            json_values,
        ),
        "a": metric_values,
        "b": metric_values,
        "Latency": metric_values,
        "S": st.one_of(names, json_scalars),
    },
)


@PARSER_FUZZ
@given(doc=emf_docs)
def test_emf_checker(doc: dict[str, Any]) -> None:
    result = EmfChecker().check(doc, 1764150000000)
    for piece in result.documents:
        orjson.dumps(piece)  # what the input writes: must always serialise
    if result.emf:
        stamp = result.documents[0]["_aws"]["Timestamp"]
        assert type(stamp) is int and 0 <= stamp < 2**63


@PARSER_FUZZ
@given(docs=st.lists(st.one_of(emf_docs.map(orjson.dumps), st.binary(max_size=50)), min_size=1, max_size=6))
def test_emf_input_documents(docs: list[bytes]) -> None:
    losses: dict[str, int] = {}
    ctx = context()
    ctx.loss = lambda reason, n: losses.__setitem__(reason, losses.get(reason, 0) + n)
    inp = EmfInput(EmfConfig.model_validate({"type": "emf", "emit": ["logs", "metrics"]}), ctx)
    records, _ = inp.process(docs)
    assert inp.failed == 0, "no document took an unforeseen path"
    objects = 0
    for line in docs:
        try:
            objects += type(orjson.loads(line.strip() or b"x")) is dict
        except orjson.JSONDecodeError:
            pass
    assert len(records) >= objects, "every JSON object goes on (as EMF or as a plain line)"
    for record in records:
        orjson.loads(record["message"])
        assert math.isfinite(record["timestamp"])


# ----------------------------------------------------------------------------------------------- forward

int64 = st.integers(-(2**63), 2**63 - 1)  # what msgpack can carry (and uint64)
msgpack_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=True, allow_infinity=True),
        nasty_text,
        st.binary(max_size=20),
        st.builds(fp.encode_event_time, st.floats(0, 2**32 - 1)),
    ),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.one_of(nasty_text, st.integers(-(2**63), 2**63 - 1)), inner, max_size=3)
    ),
    max_leaves=6,
)
events = st.lists(
    st.one_of(
        st.tuples(
            st.one_of(st.integers(0, 2**40), st.floats()), st.dictionaries(nasty_text, msgpack_values, max_size=4)
        ).map(list),
        msgpack_values,
    ),
    max_size=4,
)
options = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "chunk": msgpack_values,
            "compressed": st.sampled_from(["gzip", "text", "zstd", "lz4", 1]),
            "size": msgpack_values,
        },
    ),
    msgpack_values,
)


def _packed(entries: list[Any]) -> bytes:
    return b"".join(msgpack.packb(e) for e in entries)


forward_messages = st.one_of(
    st.tuples(nasty_text, events).map(list),  # Forward
    st.tuples(nasty_text, events, options).map(list),
    st.tuples(nasty_text, events.map(_packed), options).map(list),  # PackedForward
    st.tuples(nasty_text, st.one_of(int64, st.floats()), msgpack_values).map(list),  # Message
    st.tuples(nasty_text, int64, msgpack_values, options).map(list),
    msgpack_values,
)


@PARSER_FUZZ
@given(messages=st.lists(forward_messages, max_size=4), junk=st.binary(max_size=30), cut=st.integers(0, 400))
def test_forward_stream(messages: list[Any], junk: bytes, cut: int) -> None:
    # The stream as the input reads it: an unpacker over bytes, then one decode per message.
    data = b"".join(msgpack.packb(m) for m in messages) + junk
    data = data[: len(data) - cut % (len(data) + 1)] if cut % 3 == 0 else data
    unpacker = fp.make_unpacker(1 << 20)
    decoder = fp.EventDecoder(1 << 20, "tag", "log")
    try:
        unpacker.feed(data)
        for message in unpacker:
            try:
                decoded = decoder.decode(message, 10)
            except fp.ProtocolError:
                continue
            assert all(type(r) is dict and type(r["timestamp"]) is float for r in decoded.records)
    except (ValueError, TypeError, msgpack.UnpackException):
        pass  # what the input catches around its unpacker: the connection is closed, the rest counted


# ----------------------------------------------------------------------------------------------- syslog

pris = st.one_of(st.integers(-5, 200).map(str), st.sampled_from(["", "00", "1a", "999", "13 "]))
stamps = st.one_of(
    st.sampled_from(
        [
            "-",
            "2026-11-26T10:00:00Z",
            "2026-13-45T99:99:99Z",
            "9999-12-31T23:59:59.999999+14:00",
            "0000-01-01T00:00:00Z",
            "Nov 26 10:00:00",
            "Feb 30 25:61:61",
            "Nov  1 00:00:00",
            "2026-11-26T10:00:00",
        ]
    ),
    nasty_text,
)
sd = st.one_of(st.sampled_from(["-", '[a@1 x="1"]', '[a@1 x="\\"]"][b y=""]', "[", "[x", "[a x=1]", "[]"]), nasty_text)
syslog_lines = st.one_of(
    st.tuples(
        pris, st.sampled_from(["1 ", "2 ", ""]), stamps, nasty_text, nasty_text, nasty_text, nasty_text, sd, nasty_text
    ).map(lambda p: f"<{p[0]}>{p[1]}{p[2]} {p[3]} {p[4]} {p[5]} {p[6]} {p[7]} {p[8]}"),
    st.tuples(pris, stamps, nasty_text, nasty_text).map(lambda p: f"<{p[0]}>{p[1]} {p[2]} {p[3]}"),
    st.text(),
)


@PARSER_FUZZ
@given(texts=st.lists(syslog_lines, min_size=1, max_size=5))
def test_syslog_parser(texts: list[str]) -> None:
    parser = SyslogParser()
    for text in texts:
        record = parser.parse(text, 1764150000.5)
        assert type(record["message"]) is str and type(record["timestamp"]) is float
        assert math.isfinite(record["timestamp"])


# ----------------------------------------------------------------------------------------------- statsd

statsd_lines = st.one_of(
    st.tuples(
        nasty_text,
        st.lists(number_texts, min_size=1, max_size=3).map(":".join),
        st.sampled_from(["c", "g", "ms", "h", "d", "s", "x", "", "C"]),
        st.sampled_from(
            ["", "|@0.5", "|@0", "|@2", "|@nan", "|@", "|#a:b,c", "|#", "|c:abc", "|T1764150000", "|@0.1|#x:1"]
        ),
    ).map(lambda p: f"{p[0]}:{p[1]}|{p[2]}{p[3]}".encode("utf-8", "surrogatepass")),
    st.sampled_from([b"_e{5,4}:title|text", b"_sc|name|0", b"::::", b"|||", b"a:1", b"a|c"]),
    st.binary(max_size=40),
)


@PARSER_FUZZ
@given(lines=st.lists(statsd_lines, max_size=10))
@example(lines=[b":nan|c", b"0:-1e308|c|@0.5"])  # found by this test: -1e308 / 0.5 was added as -inf
@example(lines=[b"a:1e308|c", b"a:1e308|c", b"g:1e308|g", b"g:+1e308|g"])  # sums past the largest float
def test_statsd_parser(lines: list[bytes]) -> None:
    agg = Aggregator(10.0, 1000, loss=lambda reason, n: None, log=LOG, component="fuzz")
    parser = StatsdParser(agg, 4000)
    malformed = parser.feed(b"\n".join(lines))
    assert 0 <= malformed <= parser.lines
    for point in agg.flush_all():
        if point.type in ("counter", "gauge"):
            assert math.isfinite(point.value)


# ----------------------------------------------------------------------------------------------- X-Ray

trace_ids = st.one_of(
    st.sampled_from(["1-5759e988-bd862e3fe1be46a994272793", "1-zz", "", "1-5759e988-bd862e3fe1be46a99427279"]),
    json_scalars,
)
segments = st.fixed_dictionaries(
    {},
    optional={
        "trace_id": trace_ids,
        "id": st.one_of(st.sampled_from(["70de5b6f19ff9a0a", "70DE5B6F19FF9A0A", "x" * 16]), json_scalars),
        "name": json_scalars,
        "start_time": st.one_of(st.sampled_from([1e300, -1.0, 1764150000.5]), json_scalars),
        "end_time": json_scalars,
        "in_progress": json_scalars,
        "parent_id": json_scalars,
        "type": st.sampled_from(["subsegment", "segment", 1]),
        "subsegments": json_values,
    },
)
datagrams = st.one_of(
    segments.map(lambda d: HEADER + orjson.dumps(d)),
    st.tuples(
        st.sampled_from([b'{"format": "json", "version": 1}', b'{"format":"json"}', b"", b"{", b"\xff"]),
        st.binary(max_size=60),
    ).map(lambda p: p[0] + b"\n" + p[1]),
    st.binary(max_size=80),
)


@PARSER_FUZZ
@given(data=datagrams)
def test_xray_datagram(data: bytes) -> None:
    result = parse_datagram(data, 1764150000.5)
    assert type(result) is str or (type(result) is dict and type(result["raw"]) is bytes)


# ------------------------------------------------------------------------------ timestamps, regex, json

time_values = st.one_of(
    nasty_text,
    st.binary(max_size=30),
    st.integers(-(2**80), 2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    number_texts,
    st.sampled_from(
        ["2026-11-26T10:00:00Z", "2026-11-26 10:00:00", "9999-12-31T23:59:59+14:00", "Nov 26 10:00:00", "0", "-1e20"]
    ),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
formats = st.sampled_from([*NAMED_FORMATS, "%Y-%m-%d %H:%M:%S", "%d/%b/%Y:%H:%M:%S %z"])


@PARSER_FUZZ
@given(spec=formats, values=st.lists(time_values, min_size=1, max_size=5))
def test_timestamp_parsers(spec: str, values: list[Any]) -> None:
    parse = timestamp_parser(spec, UTC)
    for value in values:
        result = parse(value)
        assert result is None or (type(result) is float and math.isfinite(result))


@PARSER_FUZZ
@given(values=st.lists(time_values, min_size=1, max_size=6), spec=formats)
def test_parse_timestamp_processor(values: list[Any], spec: str) -> None:
    config = ParseTimestampConfig(type="parse_timestamp", inputs=["x"], field="t", formats=[spec, "rfc3339"])
    out = ParseTimestamp(config, context()).process(Batch(LOGS, [{"timestamp": 1.0, "t": v} for v in values]))
    assert out is not None and len(out.records) == len(values)
    assert all(type(r["timestamp"]) is float and math.isfinite(r["timestamp"]) for r in out.records)


regex_patterns = st.sampled_from(
    [
        r'^(?P<client>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+)',
        r"(?P<level>[A-Z]+) (?P<timestamp>\d+)",
        r"(?P<a>.*)(?P<b>.*)",
        r"^(?P<x>(a+)+)$",
    ]
)


@PARSER_FUZZ
@given(
    pattern=regex_patterns,
    messages=st.lists(st.one_of(nasty_text, st.binary(max_size=40), st.integers(), st.none()), min_size=1, max_size=6),
)
def test_parse_regex_processor(pattern: str, messages: list[Any]) -> None:
    config = ParseRegexConfig(type="parse_regex", inputs=["x"], pattern=pattern)
    out = ParseRegex(config, context()).process(Batch(LOGS, [{"timestamp": 1.0, "message": m} for m in messages]))
    assert out is not None and len(out.records) == len(messages)


json_texts = st.one_of(
    json_values.map(lambda v: orjson.dumps(v)),
    st.sampled_from([b"NaN", b'{"a": Infinity}', b"[" * 3000, b'{"a":' * 3000, b'{"\xff": 1}', b"1e400", b'"\\ud800"']),
    st.binary(max_size=40),
)


@PARSER_FUZZ
@given(messages=st.lists(json_texts, min_size=1, max_size=6), as_text=st.booleans())
def test_parse_json_processor(messages: list[bytes], as_text: bool) -> None:
    records = [{"timestamp": 1.0, "message": m.decode("utf-8", "replace") if as_text else m} for m in messages]
    out = ParseJson(ParseJsonConfig(type="parse_json", inputs=["x"]), context()).process(Batch(LOGS, records))
    assert out is not None and len(out.records) == len(messages)
