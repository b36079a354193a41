"""Golden cases: every `plugins/<section>/<plugin>/testcases/<case>/` folder, run by this one test.

A case is a folder named after what it guards, holding:

- `config.yaml`: the plugin's config body (`type` and its options; `inputs` may be left out);
- what goes in: `input.<kind>.jsonl`, records, one JSON document per line (`kind`: logs, metrics, traces);
  for a receiving input (one with `listen`), `input.txt`, the bytes a client sends on one TCP connection;
- what must come out:
  - a processor: `expected.<kind>.jsonl`, the records it returns (empty when it returns nothing);
  - an input: `expected.<kind>.jsonl`, the records it emits;
  - an output: `expected/`, the files it wrote under its data directory, byte for byte; for an AWS output
    (one with a peer in tests/contract/peers.py, run against moto as there), the objects it wrote to its
    bucket (`expected/<key>`, gzip and zstd bodies decompressed; the request's origin is `golden`);
- optionally `counters.json`: figures of the plugin's `counters()` the case must leave (a subset).

The wall clock reads `NOW` (2025-11-26T09:41:00Z) and local time is UTC while a case runs, so rules that depend
on the time (how old a metric CloudWatch still takes, the year of an RFC 3164 date, the time a record was received)
give the same answer on every run; write timestamps near it.

Values JSON cannot hold: `{"$bytes": "..."}` is a `bytes` value (the string encoded as UTF-8 with
`surrogateescape`, so `"\\udcff"` is the byte 0xff), `{"$metric": {...}}` a `Metric` (its `to_dict()` form).

`GOLDEN_UPDATE=1 pytest tests/plugins/test_golden_cases.py` writes what the plugins produce as the expected
files of every case: for a new case, then read them before committing (a golden file nobody read guards nothing).
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.api import Component, Input, Output, Processor
from collector.events import KINDS, Batch, Metric
from collector.registry import load_registry
from collector.testing import component_context, free_port, wait_for
from tests.contract.peers import AWS_PEERS, against_moto
from tests.moto import MotoServer
from tests.plugins.receiver_support import Sink, make_context, running

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
CASES = sorted(p for p in PLUGINS.glob("*/*/testcases/*") if p.is_dir())
UPDATE = os.environ.get("GOLDEN_UPDATE") == "1"
NOW = 1764150060.0


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(time, "time", lambda: NOW)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def plugin_class(folder: Path) -> type[Component]:
    """The registered plugin whose code lives in `folder` (found through the entry points, not by name)."""
    section = folder.parent.name
    for (kind, _), cls in load_registry().plugins.items():
        if kind == section and Path(inspect.getfile(cls)).parent == folder:
            return cls
    raise AssertionError(f"{folder.relative_to(PLUGINS)} has testcases/ but no registered plugin lives there")


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return value["$bytes"].encode("utf-8", "surrogateescape")
        if set(value) == {"$metric"}:
            m = value["$metric"]
            return Metric(
                m["name"], m["type"], m["value"], m.get("tags"), m.get("timestamp", 0.0), m.get("unit"),
                m.get("interval", 0.0),
            )  # fmt: skip
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": value.decode("utf-8", "surrogateescape")}
    if isinstance(value, Metric):
        return {"$metric": encode(value.to_dict())}
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


def read_records(path: Path) -> list[Any]:
    return [decode(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]


def the_one(case: Path, pattern: str) -> Path:
    found = sorted(case.glob(pattern))
    assert len(found) == 1, f"{case}: expected one {pattern}, found {[p.name for p in found]}"
    return found[0]


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def run_processor(cls: type[Processor], config: Any, case: Path, tmp_path: Path) -> Processor:
    source = the_one(case, "input.*.jsonl")
    kind = source.name.split(".")[1]
    assert kind in KINDS, source
    plugin = cls(config, component_context(case.name, tmp_path))
    await plugin.start()
    try:
        out = plugin.process(Batch(kind, read_records(source)))  # type: ignore[arg-type]
    finally:
        await plugin.stop()
    got_kind = out.kind if out is not None else kind
    records = out.records if out is not None else []
    check_records(case, got_kind, records)
    return plugin


def check_records(case: Path, kind: str, records: list[Any]) -> None:
    expected = case / f"expected.{kind}.jsonl"
    if UPDATE:
        for old in case.glob("expected.*.jsonl"):
            old.unlink()
        expected.write_text("".join(json.dumps(encode(r), sort_keys=True) + "\n" for r in records))
    assert expected.exists(), f"{case}: the plugin produced {kind}; expected.{kind}.jsonl is missing"
    assert [encode(r) for r in records] == [json.loads(x) for x in expected.read_text().splitlines()]


async def run_input(cls: type[Input], body: dict[str, Any], case: Path, tmp_path: Path) -> Input:
    assert "listen" in cls.Config.model_fields, f"{case}: golden cases run inputs that listen (input.txt over TCP)"
    port = free_port()
    config = cls.Config.model_validate({**body, "listen": f"tcp://127.0.0.1:{port}"})
    sink = Sink()
    ctx = make_context(tmp_path, sink, case.name)
    plugin = cls(config, ctx)
    data = (case / "input.txt").read_bytes()
    expected = case / "expected.logs.jsonl"
    # How many records to wait for: the expected file's, or (writing it) one per line sent.
    want = data.count(b"\n") if UPDATE else len(expected.read_text().splitlines())
    async with running(plugin, ctx):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await wait_for(lambda: len(sink.records) >= want)
    check_records(case, sink.batches[0].kind if sink.batches else "logs", sink.records)
    return plugin


async def run_output(cls: type[Output], config: Any, case: Path, tmp_path: Path, moto: MotoServer | None) -> Output:
    source = the_one(case, "input.*.jsonl")
    kind = source.name.split(".")[1]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    plugin = cls(config, component_context(case.name, data_dir))
    batch = Batch(kind, read_records(source))  # type: ignore[arg-type]
    batch.origin = "golden"
    await plugin.start()
    try:
        await plugin.send(batch)
    finally:
        await plugin.stop()
    if moto is not None:
        assert hasattr(config, "bucket"), f"{case}: read back what {cls.type_name} wrote (only S3 buckets are)"
        written = objects_in(moto, config.bucket)
    else:
        written = files_under(data_dir)
    expected = case / "expected"
    if UPDATE:
        shutil.rmtree(expected, ignore_errors=True)
        for name, body in written.items():
            (expected / name).parent.mkdir(parents=True, exist_ok=True)
            (expected / name).write_bytes(body)
    assert written == files_under(expected)
    return plugin


def objects_in(moto: MotoServer, bucket: str) -> dict[str, bytes]:
    """The bucket's objects by key, bodies decompressed (compressed bytes differ between zlib and ISA-L)."""
    s3 = moto.client("s3")
    out = {}
    for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        if entry["Key"].endswith(".gz"):
            body = gzip.decompress(body)
        elif entry["Key"].endswith(".zst"):
            import zstandard

            body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
        out[entry["Key"]] = body
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.relative_to(PLUGINS).as_posix() for c in CASES])
async def test_golden_case(case: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    cls = plugin_class(case.parent.parent)
    body = yaml.safe_load((case / "config.yaml").read_text())
    moto = None
    if issubclass(cls, Output) and cls.type_name in AWS_PEERS:
        moto = request.getfixturevalue("moto")
        body = against_moto(cls.type_name, body, moto)
    plugin: Component
    if issubclass(cls, Input):
        config = None
    else:
        body.setdefault("inputs", ["golden"])
        config = cls.Config.model_validate(body)
    if issubclass(cls, Processor):
        plugin = await run_processor(cls, config, case, tmp_path)
    elif issubclass(cls, Output):
        plugin = await run_output(cls, config, case, tmp_path, moto)
    else:
        assert issubclass(cls, Input)
        plugin = await run_input(cls, body, case, tmp_path)
    counters = case / "counters.json"
    if counters.exists():
        wanted = json.loads(counters.read_text())
        assert {k: plugin.counters().get(k) for k in wanted} == wanted


def test_every_plugin_that_transforms_records_has_golden_cases() -> None:
    # Processors are pure records-in -> records-out: each one keeps a few cases beside its code.
    missing = sorted(
        p.relative_to(PLUGINS).as_posix()
        for p in (PLUGINS / "processors").iterdir()
        if (p / "__init__.py").exists() and len([c for c in (p / "testcases").glob("*") if c.is_dir()]) < 2
    )
    assert not missing, f"add testcases/<what-it-guards>/ (config.yaml, input, expected) to: {missing}"
