"""`collector test`: pipeline unit tests run on the config's real processors (collector/pipeline_tests*.py).

Each case writes a config and a test file and runs the command in-process; the end-to-end tests
(tests/e2e/test_pipeline_tests_e2e.py) run the installed CLI.
"""

from __future__ import annotations

import re
import textwrap
import time
from pathlib import Path

import pytest

from collector.cli import main

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
data_dir: {data_dir}
inputs:
  app: {{type: stdin}}
  web: {{type: stdin}}
  gauges: {{type: stdin}}
processors:
  parsed: {{type: parse_json, inputs: [app]}}
  no_debug:
    type: filter
    action: drop
    conditions: [{{field: level, equals: debug}}]
    inputs: [parsed]
  tagged: {{type: add_fields, fields: {{env: prod, node: "{{host}}"}}, inputs: [no_debug]}}
  access:
    type: parse_regex
    pattern: '^(?P<method>[A-Z]+) (?P<path>\\S+) (?P<status>\\d{{3}})$'
    inputs: [web]
  metric_tags: {{type: add_fields, fields: {{env: prod}}, inputs: [gauges]}}
outputs:
  out: {{type: stdout, inputs: [tagged, access, metric_tags]}}
"""


def run(tmp_path: Path, capsys: pytest.CaptureFixture[str], tests: str, *extra: str) -> tuple[int, str, str]:
    config = tmp_path / "collector.yaml"
    config.write_text(CONFIG.format(data_dir=tmp_path / "data"))
    test_file = tmp_path / "t.yaml"
    test_file.write_text(textwrap.dedent(tests))
    status = main(["test", "-c", str(config), str(test_file), *extra])
    out, err = capsys.readouterr()
    return status, out, err


def test_parse_json_pass_and_fail_with_field_path_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        tmp_path,
        capsys,
        """\
        tests:
          - name: parsed
            insert_at: app
            inputs: [{log: {message: '{"level": "info", "user": {"id": 7}}'}}]
            outputs:
              - extract_from: parsed
                records: [{message: '{"level": "info", "user": {"id": 7}}', level: info, user: {id: 7}}]
          - name: wrong
            insert_at: app
            inputs: [{log: {message: '{"level": "warn", "user": {"id": 7}}'}}]
            outputs:
              - extract_from: parsed
                records:
                  - {message: '{"level": "warn", "user": {"id": 7}}', level: error, user: {id: 8}, gone: 1}
                  - {message: 'second'}
        """,
    )
    assert status == 1
    assert out.splitlines() == [
        "PASS parsed",
        "FAIL wrong",
        "    parsed: expected 2 record(s), got 1",
        "    parsed[0].gone: expected 1, missing",
        '    parsed[0].level: expected "error", got "warn"',
        "    parsed[0].user.id: expected 8, got 7",
        '    parsed[1]: missing record, expected {"message": "second"}',
        "2 tests: 1 passed, 1 failed",
    ]


def test_parse_regex_on_raw_lines_with_a_fixed_clock(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        tmp_path,
        capsys,
        """\
        tests:
          - name: access
            insert_at: web
            now: 2025-11-26T09:41:00Z
            inputs: [{line: GET /a 200}, {line: garbage}]
            outputs:
              - extract_from: access
                records:
                  - {message: GET /a 200, timestamp: 1764150060, method: GET, path: /a, status: "200"}
                  - {message: garbage, timestamp: 1764150060, parse_error: regex did not match}
          - name: status is an integer (it is not, regex groups are strings)
            insert_at: web
            inputs: [{line: GET /b 500}]
            outputs:
              - extract_from: access
                conditions: [{field: status, type: integer}]
        """,
    )
    assert status == 1, out
    assert out.splitlines() == [
        "PASS access",
        "FAIL status is an integer (it is not, regex groups are strings)",
        '    access[0].status: expected type integer, got "500"',
        "2 tests: 1 passed, 1 failed",
    ]


def test_filter_no_outputs_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        tmp_path,
        capsys,
        """\
        tests:
          - name: debug dropped
            insert_at: parsed
            inputs: [{log: {level: debug}}]
            no_outputs_from: [no_debug, tagged, out]
          - name: info is not dropped
            insert_at: parsed
            inputs: [{log: {level: info}}]
            no_outputs_from: [no_debug]
        """,
    )
    assert status == 1
    assert out.splitlines() == [
        "PASS debug dropped",
        "FAIL info is not dropped",
        '    no_debug: expected no records, got 1: {"level": "info"}',
        "2 tests: 1 passed, 1 failed",
    ]


def test_add_fields_host_is_testhost_and_conditions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        tmp_path,
        capsys,
        """\
        tests:
          - name: tagged
            insert_at: no_debug
            inputs: [{log: {level: info}}, {log: {level: warn}}]
            outputs:
              - extract_from: tagged
                count: 2
                conditions:
                  - {field: env, equals: prod}
                  - {field: node, matches: '^test'}
                  - {field: level, exists: true}
                  - {field: user, exists: false}
          - name: conditions fail
            insert_at: no_debug
            inputs: [{log: {level: info}}]
            outputs:
              - extract_from: tagged
                count: 3
                conditions:
                  - {field: env, equals: dev}
                  - {field: node, matches: '^prod-'}
                  - {field: level, exists: false}
                  - {field: user.id, exists: true}
        """,
    )
    assert status == 1
    assert out.splitlines() == [
        "PASS tagged",
        "FAIL conditions fail",
        "    tagged: expected 3 record(s), got 1",
        '    tagged[0].env: expected "dev", got "prod"',
        '    tagged[0].node: expected to match /^prod-/, got "testhost"',
        '    tagged[0].level: expected not to exist, got "info"',
        "    tagged[0].user.id: expected to exist, missing",
        "2 tests: 1 passed, 1 failed",
    ]


def test_a_chain_each_point_sees_its_own_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What `parsed` passed on is checked as it was then, not as add_fields changed it afterwards."""
    status, out, _ = run(
        tmp_path,
        capsys,
        """\
        tests:
          - name: chain
            insert_at: app
            now: 1000
            inputs: [{line: '{"level": "info"}'}, {line: '{"level": "debug"}'}]
            outputs:
              - extract_from: parsed
                records:
                  - {message: '{"level": "info"}', timestamp: 1000.0, level: info}
                  - {message: '{"level": "debug"}', timestamp: 1000.0, level: debug}
              - extract_from: out
                records: [{message: '{"level": "info"}', timestamp: 1000.0, level: info, env: prod, node: testhost}]
        """,
    )
    assert (status, out.splitlines()) == (0, ["PASS chain", "1 test: 1 passed, 0 failed"])


def test_metrics_and_the_now_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = time.time()
    status, out, _ = run(
        tmp_path,
        capsys,
        """\
        tests:
          - name: metric tagged, timestamp from --now
            insert_at: gauges
            inputs: [{metric: {name: load, type: gauge, value: 0.5, tags: {host: a}}}]
            outputs:
              - extract_from: metric_tags
                conditions:
                  - {field: tags.env, equals: prod}
                  - {field: tags.host, equals: a}
                  - {field: value, type: float}
                  - {field: timestamp, equals: 1764150060}
        """,
        "--now",
        "2025-11-26T09:41:00Z",
    )
    assert status == 0, out
    assert time.time() >= before  # the real clock is back


def test_the_config_tests_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text(
        CONFIG.format(data_dir=tmp_path / "data")
        + "tests:\n  - {name: in config, insert_at: parsed, inputs: [{log: {level: debug}}], no_outputs_from: [out]}\n"
    )
    assert main(["validate", "-c", str(config)]) == 0  # `tests:` is a valid key; run and validate ignore it
    capsys.readouterr()
    assert main(["test", "-c", str(config)]) == 0
    assert "PASS in config" in capsys.readouterr().out


def test_no_tests_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text(CONFIG.format(data_dir=tmp_path / "data"))
    assert main(["test", "-c", str(config)]) == 2
    assert "no tests found" in capsys.readouterr().err


def test_invalid_test_files_say_where_and_what(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(
        tmp_path,
        capsys,
        """\
        tests:
          - name: typos
            insert_at: parsd
            inputs:
              - {line: x, log: {}}
            outputs:
              - extract_from: tagged
                condtions: []
          - name: names
            insert_at: tagged
            now: yesterday
            inputs: [{log: {}}]
            outputs:
              - {extract_from: parsed, count: 1}
        """,
    )
    assert status == 2 and out == ""
    t = tmp_path / "t.yaml"
    assert err.splitlines() == [
        "3 errors in tests:",
        f"  {t}:5:9: tests[0].inputs[0]: give exactly one of `log`, `line`, `metric`, `trace` per input record",
        f"  {t}:8:9: tests[0].outputs[0].condtions: unknown option `condtions` (hint: did you mean `conditions`?)",
        f"  {t}:11:10: tests[1].now: `yesterday` is not an RFC 3339 time nor epoch seconds",
    ]


def test_names_are_checked_against_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(
        tmp_path,
        capsys,
        """\
        tests:
          - {name: a, insert_at: parsd, inputs: [{log: {}}], no_outputs_from: [out]}
          - {name: b, insert_at: out, inputs: [{log: {}}], no_outputs_from: [out]}
          - name: c
            insert_at: tagged
            inputs: [{log: {}}]
            outputs: [{extract_from: parsed, count: 1}]
            no_outputs_from: [nope]
        """,
    )
    t = tmp_path / "t.yaml"
    assert status == 2
    assert err.splitlines() == [
        "4 errors in tests:",
        f"  {t}:2:15: tests[0].insert_at: `parsd` is not an input or processor of the config "
        "(hint: did you mean `parsed`?)",
        f"  {t}:3:15: tests[1].insert_at: `out` is an output (records are injected as a component's output)",
        f"  {t}:7:16: tests[2].outputs[0].extract_from: `parsed` is not downstream of `tagged`: it can receive "
        "nothing (hint: components downstream: out)",
        f"  {t}:8:23: tests[2].no_outputs_from[0]: `nope` is not a processor or output",
    ]


def test_a_missing_test_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "collector.yaml"
    config.write_text(CONFIG.format(data_dir=tmp_path / "data"))
    assert main(["test", "-c", str(config), str(tmp_path / "none.yaml")]) == 2
    assert "cannot read test file: No such file or directory" in capsys.readouterr().err


def test_the_documented_example_runs_and_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = (REPO / "docs" / "testing-pipelines.md").read_text()
    found = re.search(r"## A full example.*?```yaml\n(.*?)```", doc, re.S)
    assert found is not None
    config = tmp_path / "collector.yaml"
    config.write_text(found.group(1).replace("/tmp/collector-example", str(tmp_path / "data")))
    status = main(["test", "-c", str(config)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.splitlines()[-1] == "3 tests: 3 passed, 0 failed"


def test_equals_is_strict_about_types_and_undecodable_bytes_print(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(
        tmp_path,
        capsys,
        """\
        tests:
          - name: strict
            insert_at: no_debug
            inputs: [{log: {flag: 1, n: 2, bad: "\\udcff"}}]
            outputs:
              - extract_from: tagged
                conditions:
                  - {field: flag, equals: true}
                  - {field: n, equals: 2.0}
                  - {field: bad, equals: x}
        """,
    )
    assert status == 1
    assert out.splitlines()[1:3] == [
        "    tagged[0].flag: expected true, got 1",
        '    tagged[0].bad: expected "x", got "\\udcff"',
    ]
