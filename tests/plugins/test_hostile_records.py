"""Hostile records mixed into good ones: every built-in processor, line format and input decoder keeps every good one.

The processors are enumerated from the plugin registry (a new one is covered
without editing this file), each built from the first example of its required
options and again with the first example of every option. A processor must not
raise on any of the corpus (its own contract: bad input is kept and tagged, or
dropped and counted), and every good record that comes out of a fresh instance
alone must come out of the mixed batch too. The inputs' decoders (EMF, statsd,
syslog, forward) get the same corpus as bytes on the wire.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import orjson
import pytest
from pydantic import ValidationError

from collector.api import ComponentContext, HostFacts, Processor
from collector.events import LOGS, METRICS, TRACES, Batch, Metric
from collector.registry import load_registry
from collector_plugins.common.metrics.aggregator import Aggregator
from collector_plugins.inputs.emf.input import EmfConfig, EmfInput
from collector_plugins.inputs.file.container_formats import FORMATS
from collector_plugins.inputs.forward.protocol import EventDecoder, encode_event_time, make_unpacker
from collector_plugins.inputs.statsd.protocol import StatsdParser
from collector_plugins.inputs.syslog.parser import SyslogParser

DEEP = 5000


def _deep_json(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def hostile_logs() -> list[dict[str, Any]]:
    """Log records as the field sends them: bad escapes, huge numbers, NaN, nesting, bad bytes, wrong types."""
    messages: list[Any] = [
        r'path="C:\Users\bob" level=info',
        r'a="\x" b="\u12" c="\U0001" d="\777"',
        '{"n": 1e300, "big": 123456789012345678901234567890, "neg": -1e308}',
        '{"x": NaN, "y": Infinity, "z": -Infinity}',
        "[" * DEEP + "]" * DEEP,
        _deep_json(DEEP),
        '{"timestamp": 1e300, "level": {"nested": [1, 2]}, "message": null}',
        b"\xff\xfe\x80 level=info \xc3\x28",
        b'{"bad": "\xed\xa0\x80 surrogate"}',
        "a=\x00 b=1 \x00\x00",
        b"\x00" * 100,
        "x" * 1_000_000,
        "k=v " * 50_000,
        '{"message": "' + "y" * 200_000 + '"}',
        123,
        None,
        ["a=1"],
        {"a": 1},
        float("nan"),
        "",
        " \t ",
        '"',
        "=",
        '127.0.0.1 - - [99/Foo/9999:99:99:99 +9999] "GET /"',
        "2026-13-45T25:61:61Z level=error",
    ]
    records: list[dict[str, Any]] = [{"timestamp": 1.0, "message": m} for m in messages]
    records += [
        {},
        {"timestamp": 1.0},
        {"message": "level=info"},
        {"timestamp": float("nan"), "message": "a=1"},
        {"timestamp": float("inf"), "message": "a=1"},
        {"timestamp": "yesterday", "message": "a=1"},
        {"timestamp": 1.0, "message": "a=1", "timestamp_raw": 10**30},
        {"timestamp": 1.0, "message": "a=1", "timestamp_raw": "-1e308"},
        {"timestamp": 1.0, "message": "a=1", "timestamp_raw": "9" * 400},
        {"timestamp": 1.0, "message": "a=1", "timestamp_raw": "\x00\x00"},
        {"timestamp": 1.0, "message": "a=1", "timestamp_raw": float("nan")},
        {"timestamp": 1.0, "message": "a=1", "level": ["error"], "kubernetes": "not a map"},
        {"timestamp": 1.0, "message": "a=1", "kubernetes": {"namespace": None}},
        {"timestamp": 1.0, "message": "a=1", "trace_id": 12, "span_id": None, "traceparent": "00-zz"},
        {"timestamp": 1.0, "message": "a=1", "x_amzn_trace_id": "Root=1-;Parent=\x00;Sampled=9" * 100},
        {"timestamp": 1.0, "message": "traceparent=00-" + "f" * 32 + "-" + "0" * 16 + "-01"},
        {"timestamp": 1.0, "message": '{"traceId": "' + "g" * 32 + '", "spanId": 5}'},
        {"timestamp": 1.0, "message": "a=1", "parse_error": {"not": "a string"}},
        {"timestamp": 1.0, "message": "a=1", "fields": "a string where a map goes"},
    ]
    return records


def hostile_metrics() -> list[Metric]:
    values: list[tuple[str, Any]] = [
        ("gauge", float("nan")),
        ("gauge", float("inf")),
        ("counter", -float("inf")),
        ("gauge", 1e308),
        ("counter", 10**30),
        ("gauge", None),
        ("gauge", "12"),
        ("gauge", [1.0]),
        ("distribution", [float("nan"), 1.0]),
        ("distribution", {"values": [1.0], "counts": [-3]}),
        ("distribution", {"values": [1.0, 2.0], "counts": [1]}),
        ("distribution", "not a distribution"),
        ("distribution", []),
        ("set", None),
        ("set", list(range(100_000))),
        ("histogram", 1.0),
    ]
    out = [Metric("hostile", kind, value) for kind, value in values]  # type: ignore[arg-type]
    out += [
        Metric("", "gauge", 1.0),
        Metric("n" * 100_000, "gauge", 1.0),
        Metric("tags", "gauge", 1.0, tags={"k": None, "": "", "x" * 2000: "v"}),  # type: ignore[dict-item]
        Metric("stamp", "gauge", 1.0, timestamp=float("nan")),
        Metric("stamp", "gauge", 1.0, timestamp=1e300),
        Metric("unit", "gauge", 1.0, unit="Parsecs\x00"),
        Metric("interval", "counter", 1.0, interval=float("nan")),
    ]
    return out


def hostile_traces() -> list[dict[str, Any]]:
    return [
        {},
        {"trace_id": 1, "id": None, "start_time": float("nan")},
        {"trace_id": "1-zz", "id": "x" * 10_000, "name": "\x00", "start_time": 1e300, "end_time": -1e300},
        {"raw": b"\xff\xfe", "trace_id": "1-5759e988-bd862e3fe1be46a994272793"},
        {"subsegments": "not a list"},
        {"subsegments": [{"subsegments": [{}] * 3}] * 3},
    ]


def good_logs(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        message = (
            f'{{"level": "error", "msg": "request {i}", "n": {i}}}'
            if i % 2
            else f'127.0.0.1 - - [26/Nov/2026:10:00:{i % 60:02d} +0000] "GET /item/{i} HTTP/1.1" level=error n={i}'
        )
        out.append(
            {
                "timestamp": 1764150000.0 + i,
                "message": message,
                "timestamp_raw": f"2026-11-26T10:00:{i % 60:02d}Z",
                "level": "error",
                "kubernetes": {"namespace": "prod"},
                "good": f"good{i}",
            }
        )
    return out


def good_metrics(n: int) -> list[Metric]:
    now = time.time()  # metrics_to_emf refuses points older than CloudWatch takes
    return [Metric(f"requests{i}", "counter", float(i), tags={"good": f"good{i}"}, timestamp=now) for i in range(n)]


def good_traces(n: int) -> list[dict[str, Any]]:
    return [
        {
            "trace_id": "1-5759e988-bd862e3fe1be46a994272793",
            "id": f"{i:016x}",
            "name": f"good{i}",
            "start_time": 1764150000.0,
            "end_time": 1764150001.0,
            "level": "error",  # what the filter's example conditions ask for
            "kubernetes": {"namespace": "prod"},
        }
        for i in range(n)
    ]


def interleave(good: list[Any], bad: list[Any]) -> list[Any]:
    """Good records with the hostile ones spread between them (each hostile one has good neighbours)."""
    out: list[Any] = []
    for i, record in enumerate(good):
        out.append(record)
        if i < len(bad):
            out.append(bad[i])
    return out + bad[len(good) :]


CORPUS: dict[str, tuple[Callable[[int], list[Any]], Callable[[], list[Any]]]] = {
    LOGS: (good_logs, hostile_logs),
    METRICS: (good_metrics, hostile_metrics),
    TRACES: (good_traces, hostile_traces),
}


def _first_example(field: Any) -> Any:
    return field.examples[0] if field.examples else None


def configs(cls: type[Processor]) -> list[dict[str, Any]]:
    """The processor's required options from their first examples; then every option from its first example."""
    fields = cls.Config.model_fields
    base = {"type": cls.type_name, "inputs": ["src"]}
    required = {k: _first_example(f) for k, f in fields.items() if f.is_required() and k not in base}
    every = {k: _first_example(f) for k, f in fields.items() if k not in base and f.examples}
    out = [{**base, **required}]
    try:
        cls.Config.model_validate({**base, **required, **every})
    except ValidationError:
        return out  # examples of options that exclude each other: the required ones only
    return [*out, {**base, **required, **every}]


PROCESSORS = sorted(
    (name, cls)
    for name, cls in load_registry().in_section("processors").items()
    if cls.__module__.startswith("collector_plugins.")
)
CASES = [
    pytest.param(cls, i, kind, id=f"{name}-{i}-{kind}")
    for name, cls in PROCESSORS
    for i, _ in enumerate(configs(cls))
    for kind in sorted(cls.accepts)
]


def test_every_builtin_processor_is_covered() -> None:
    names = {name for name, _ in PROCESSORS}
    assert {"parse_json", "parse_logfmt", "parse_regex", "parse_timestamp", "filter", "add_fields"} <= names
    assert {name for name, _ in PROCESSORS} == {c.id.split("-")[0] for c in CASES}


_MARKER = re.compile(r"\bgood(\d+)\b")


def markers(records: list[Any]) -> set[str]:
    """Which good records (by their `goodN` marker) a processor's output holds, whatever shape it took."""
    return set(_MARKER.findall(repr(records)))


async def build(cls: type[Processor], options: dict[str, Any], tmp_path: Path) -> Processor:
    ctx = ComponentContext("under_test", logging.getLogger("test.hostile"), tmp_path, HostFacts("h"))
    instance = cls(cls.Config.model_validate(options), ctx)
    await instance.start()
    return instance


def copy_of(records: list[Any]) -> list[Any]:
    return [r.copy() for r in records]


@pytest.mark.parametrize(("cls", "variant", "kind"), CASES)
async def test_hostile_records_cost_no_good_record(
    cls: type[Processor], variant: int, kind: str, tmp_path: Path
) -> None:
    options = configs(cls)[variant]
    make_good, make_bad = CORPUS[kind]
    good = make_good(40)
    # What each good record becomes alone, in a fresh instance: the reference.
    alone = await build(cls, options, tmp_path)
    expected: set[str] = set()
    for record in copy_of(good):
        out = alone.process(Batch(kind, [record], 100))  # type: ignore[arg-type]
        if out is not None:
            expected |= markers(out.records)
    # The good corpus passes each processor alone, else the test would prove nothing; except that the filter's
    # example conditions name log fields that no metric has (tests/plugins/test_filter_processor.py covers those).
    assert len(expected) == len(good) or (cls.type_name == "filter" and kind == METRICS)
    mixed = await build(cls, options, tmp_path)
    batch = Batch(kind, interleave(copy_of(good), make_bad()), 10_000)  # type: ignore[arg-type]
    n = len(batch.records)
    out = mixed.process(batch)  # must not raise: a built-in processor keeps, tags or counts bad input itself
    got = markers(out.records) if out is not None else set()
    assert expected <= got, f"good records lost next to hostile ones: {sorted(expected - got)[:5]}"
    if cls.emits == cls.accepts and kind == LOGS and out is not None:
        # Log parsers keep what they cannot parse: nothing but a filter's choice leaves the batch.
        assert len(out.records) == n or cls.type_name == "filter"
    await alone.stop()
    await mixed.stop()


# ----------------------------------------------------------------------------------------------- line formats


def hostile_lines() -> list[bytes]:
    return [
        b"\xff\xfe\x80",
        b"\x00" * 64,
        b'{"log":"C:\\Users\\bob\\n","stream":"stdout","time":"2026-11-26T10:00:00Z"}',
        b'{"log":"\\ud800\\n","stream":"stderr","time":"9999-99-99T99:99:99Z"}',
        b'{"log": 12, "stream": null, "time": 1e300}',
        b'{"log":"x","stream":"stdout","time":"2026-11-26T10:00:00Z"',
        b"[" * DEEP + b"]" * DEEP,
        _deep_json(DEEP).encode(),
        b"2026-11-26T10:00:00.000000000Z stdout Q partial-with-bad-tag",
        b"2026-11-26T10:00:00.000000000Z nostream F x",
        b"not-a-time stdout F x",
        b"x" * 300_000,
        b"",
        b" ",
    ]


def good_line(fmt: str, i: int) -> bytes:
    if fmt == "docker":
        return orjson.dumps({"log": f"good{i}\n", "stream": "stdout", "time": "2026-11-26T10:00:00.000000001Z"})
    return f"2026-11-26T10:00:00.000000001Z stdout F good{i}".encode()


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_hostile_lines_cost_no_good_line(name: str) -> None:
    fmt = FORMATS[name]()
    state = fmt.new_state()
    good = [good_line(name, i) for i in range(40)]
    lines = interleave(good, hostile_lines())
    parsed = fmt.parse(state, lines, 0)
    records = parsed.records + fmt.flush(state).records
    messages = [r["message"] for r in records]
    assert [m for m in messages if m.startswith("good")] == [f"good{i}" for i in range(40)]
    assert all(isinstance(r["message"], str) and isinstance(r["timestamp"], float) for r in records)


# ----------------------------------------------------------------------------------------------- inputs' decoders


def hostile_documents() -> list[bytes]:
    """Lines for the document decoders (EMF, statsd, syslog): the corpus above, as bytes on the wire."""
    out = [
        m if type(m) is bytes else str(m).encode("utf-8", "surrogatepass")
        for m in (r["message"] for r in hostile_logs()[:25] if "message" in r)
    ]
    stamp = b'{"_aws":{"Timestamp":%s,"CloudWatchMetrics":[{"Namespace":"A","Dimensions":[[]],'
    stamp += b'"Metrics":[{"Name":"v"}]}]},"v":1}'
    out += [stamp % v for v in (b"1e300", b"-1e300", b"NaN", b'"x"', b"18446744073709551615", b"[]", b"{}")]
    out += [b'{"_aws": 1e300}', b'{"_aws": {"CloudWatchMetrics": ' + b"[" * DEEP + b"]" * DEEP + b"}}"]
    return [line.replace(b"\n", b" ") for line in out]


def test_emf_documents_cost_no_good_document() -> None:
    losses: dict[str, int] = {}
    ctx = ComponentContext("emf", logging.getLogger("test.hostile"), Path("/nonexistent"), HostFacts("h"))
    ctx.loss = lambda reason, n: losses.__setitem__(reason, losses.get(reason, 0) + n)
    inp = EmfInput(EmfConfig.model_validate({"type": "emf", "emit": ["logs", "metrics"]}), ctx)
    good = [
        orjson.dumps(
            {
                "_aws": {
                    "Timestamp": int(time.time() * 1000),
                    "CloudWatchMetrics": [{"Namespace": "A", "Dimensions": [["g"]], "Metrics": [{"Name": "v"}]}],
                },
                "g": f"good{i}",
                "v": i,
            }
        )
        for i in range(40)
    ]
    records, _ = inp.process(interleave(good, hostile_documents()))
    assert markers(records) == {str(i) for i in range(40)}
    assert inp.failed == 0 and "emf_document_error" not in losses


def test_statsd_lines_cost_no_good_line() -> None:
    agg = Aggregator(10.0, 1000, loss=lambda reason, n: None, log=logging.getLogger("t"), component="statsd")
    parser = StatsdParser(agg, 4000)
    good = [f"good{i}:{i}|c|#k:v".encode() for i in range(40)]
    hostile = [*hostile_documents(), b"x:nan|c", b"x:1e999|g", b"x:1|c|@0", b"x:" + b"9" * 400 + b"|ms", b":1|c"]
    parser.feed(b"\n".join(interleave(good, hostile)))
    points = {p.name: p.value for p in agg.flush_all()}
    assert all(points[f"good{i}"] == i for i in range(40))


def test_syslog_messages_cost_no_good_message() -> None:
    parser = SyslogParser()
    good = [f"<13>1 2026-11-26T10:00:00Z host app - - - good{i}" for i in range(40)]
    hostile = [line.decode("utf-8", "replace") for line in hostile_documents()]
    hostile += ["<13>1 9999-99-99T99:99:99Z", "<999>x", "<13>Feb 30 25:61:61 h t: m", '<13>1 - - - - - [a x="\\']
    records = [parser.parse(text, 1764150000.0) for text in interleave(good, hostile)]
    assert [r["message"] for r in records if r["message"].startswith("good")] == [f"good{i}" for i in range(40)]


def test_forward_events_cost_no_good_event() -> None:
    good = [[encode_event_time(1764150000.5), {"log": f"good{i}"}] for i in range(40)]
    hostile: list[Any] = [[], [1], ["t", {}], [None, {"a": 1}], [1.0, "not a map"], [1, {"a": 1e300}], [2**63, {}]]
    hostile += [[1, {"x": float("nan"), "y": b"\xff\xfe", 7: "int key"}], [1, {"d": _deep_list(200)}]]
    entries = interleave(good, hostile)
    decoder = EventDecoder(1 << 24, "tag", "log")
    for message in (["app", entries], ["app", b"".join(msgpack.packb(e) for e in entries)]):
        unpacker = make_unpacker(1 << 24)  # as the input reads the stream: EventTime becomes float seconds
        unpacker.feed(msgpack.packb(message))
        decoded = decoder.decode(next(unpacker), 100)
        assert [r["message"] for r in decoded.records if str(r.get("message")).startswith("good")] == [
            f"good{i}" for i in range(40)
        ]
        assert decoded.invalid >= 4


def _deep_list(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value
