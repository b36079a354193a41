"""`collector test`: load the config and the tests, run them, print PASS/FAIL lines and a summary."""

from __future__ import annotations

import sys

from collector.commands import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from collector.config.errors import ConfigError, ConfigIssue


def run_test_command(config_path: str, files: list[str], now: str | None) -> int:
    from collector.config import load_config
    from collector.log import configure_logging
    from collector.pipeline_tests import parse_now, run_tests
    from collector.pipeline_tests_format import read_tests

    configure_logging("warning")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(exc.format(), file=sys.stderr)
        return EXIT_CONFIG
    try:
        clock = parse_now(now)
    except ValueError:
        print(f"collector test: --now {now!r} is not RFC 3339 or epoch seconds", file=sys.stderr)
        return EXIT_CONFIG
    tests = []
    issues: list[ConfigIssue] = []
    sources = [(f, False) for f in files] if files else [(config_path, True)]
    for path, in_config in sources:
        loaded = read_tests(path, config.graph, only_tests_key=in_config)
        tests.extend(loaded.tests)
        issues.extend(loaded.issues)
    if issues:
        print(ConfigError(issues).format().replace("in config:", "in tests:", 1), file=sys.stderr)
        return EXIT_CONFIG
    if not tests:
        where = ", ".join(files) if files else f"{config_path} (no `tests:` section)"
        print(f"collector test: no tests found in {where}", file=sys.stderr)
        return EXIT_CONFIG
    results = run_tests(config.graph, tests, clock)
    for result in results:
        print(f"{'PASS' if result.passed else 'FAIL'} {result.name}")
        for problem in result.problems:
            print(f"    {problem}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results)} test{'s' if len(results) != 1 else ''}: {len(results) - failed} passed, {failed} failed")
    return EXIT_FAILURE if failed else EXIT_OK
