"""`collector validate` and `collector run` with record fields in a file output's path (it used to pass
validation and then fail at every start): files per value, hostile values confined, private permissions."""

from __future__ import annotations

import json
import stat

from tests.e2e.conftest import Collector, cli

CONFIG = """\
inputs:
  gen:
    type: generator
    count: 4
    lines: ['{"app": "web", "n": 1}', '{"app": "../../escape", "n": 2}', '{"app": "db", "n": 3}', '{"n": 4}']
processors:
  parsed: {type: parse_json, inputs: [gen]}
outputs:
  per_app:
    type: file
    inputs: [parsed]
    path: out/{app}/events.jsonl
"""


def test_validate_and_run_with_record_fields_in_the_path(collector: Collector) -> None:
    collector.write_config(CONFIG)
    result = cli("validate", "-c", str(collector.config))
    assert result.returncode == 0, result.stderr
    collector.start(wait_ready=False)
    assert collector.wait() == 0  # the generator's 4 events delivered, then the collector stops by itself
    assert 'msg="collector stopped" drained=True' in collector.stderr()
    out = collector.workdir / "data" / "out"
    files = {p.relative_to(out).as_posix(): p for p in out.rglob("*.jsonl")}
    assert sorted(files) == [
        "..%2F..%2Fescape/events.jsonl",
        "db/events.jsonl",
        "unknown/events.jsonl",
        "web/events.jsonl",
    ]
    assert [json.loads(line)["n"] for line in files["web/events.jsonl"].read_text().splitlines()] == [1]
    assert not (collector.workdir / "escape").exists()
    for path in files.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
