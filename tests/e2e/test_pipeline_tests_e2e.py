"""`collector test` as installed: exit status and output of passing, failing and invalid pipeline tests."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import cli

CONFIG = """\
data_dir: {data_dir}
inputs:
  app: {{type: stdin}}
processors:
  parsed: {{type: parse_json, inputs: [app]}}
  no_debug:
    type: filter
    action: drop
    conditions: [{{field: level, equals: debug}}]
    inputs: [parsed]
outputs:
  out: {{type: stdout, inputs: [no_debug]}}
"""

TESTS = """\
tests:
  - name: json parsed
    insert_at: app
    inputs: [{line: '{"level": "info"}'}]
    outputs:
      - extract_from: out
        records: [{message: '{"level": "info"}', timestamp: 1764150060.0, level: info}]
  - name: debug dropped
    insert_at: app
    inputs: [{line: '{"level": "debug"}'}]
    no_outputs_from: [out]
"""


def write(tmp_path: Path, tests: str) -> tuple[Path, Path]:
    config = tmp_path / "collector.yaml"
    config.write_text(CONFIG.format(data_dir=tmp_path / "data"))
    test_file = tmp_path / "tests.yaml"
    test_file.write_text(tests)
    return config, test_file


def test_all_pass_exit_0(tmp_path: Path) -> None:
    config, tests = write(tmp_path, TESTS)
    out = cli("test", "-c", str(config), "--now", "2025-11-26T09:41:00Z", str(tests))
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["PASS json parsed", "PASS debug dropped", "2 tests: 2 passed, 0 failed"]
    assert not (tmp_path / "data").exists()  # nothing started, nothing written


def test_a_failure_exit_1_with_the_diff(tmp_path: Path) -> None:
    config, tests = write(tmp_path, TESTS.replace("level: info}]", "level: warn}]"))
    out = cli("test", "-c", str(config), "--now", "1764150060", str(tests))
    assert out.returncode == 1, out.stderr
    assert out.stdout.splitlines() == [
        "FAIL json parsed",
        '    out[0].level: expected "warn", got "info"',
        "PASS debug dropped",
        "2 tests: 1 passed, 1 failed",
    ]


def test_an_invalid_test_file_exit_2(tmp_path: Path) -> None:
    config, tests = write(
        tmp_path, TESTS.replace("debug dropped\n    insert_at: app", "debug dropped\n    insert_at: ap")
    )
    out = cli("test", "-c", str(config), str(tests))
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        "1 error in tests:",
        f"  {tests}:9:5: tests[1].insert_at: `ap` is not an input or processor of the config "
        "(hint: did you mean `app`?)",
    ]


def test_a_processor_that_raises_has_its_records_isolated_as_at_run_time(tmp_path: Path) -> None:
    """The third-party `chaos` processor (tests/e2e/thirdparty) raises on every batch: each log record is
    kept with `processing_error`, as the runtime's isolation keeps it, and the test sees that."""
    config = tmp_path / "collector.yaml"
    config.write_text(
        CONFIG.format(data_dir=tmp_path / "data").replace(
            "  parsed: {type: parse_json, inputs: [app]}",
            "  boom: {type: chaos, every: 1, inputs: [app]}\n  parsed: {type: parse_json, inputs: [boom]}",
        )
    )
    tests = tmp_path / "tests.yaml"
    tests.write_text(
        "tests:\n"
        "  - name: isolated\n"
        "    insert_at: app\n"
        "    inputs: [{log: {message: '{\"level\": \"info\"}'}}, {log: {message: '{}'}}]\n"
        "    outputs:\n"
        "      - extract_from: boom\n"
        "        count: 2\n"
        "        conditions: [{field: processing_error, matches: '^boom: RuntimeError: chaos on batch'}]\n"
        "      - extract_from: out\n"
        "        conditions: [{field: processing_error, exists: true}]\n"
    )
    out = cli("test", "-c", str(config), str(tests))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == ["PASS isolated", "1 test: 1 passed, 0 failed"]
