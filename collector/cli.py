"""The `collector` command line.

The core commands are defined here; plugins add theirs through the
`node_collector.commands` entry-point group (collector/commands.py), which is
how `trace`, `athena-ddl` and `status` arrive. Only the command being run is
imported, except when every command must be listed (`--help`, an unknown or
missing command).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence

from collector import __version__
from collector.commands import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    BrokenCommand,
    Command,
    CommandFailed,
    add_config_argument,
    discover_commands,
    find_config,
)
from collector.defaults import API_LISTEN

EXIT_SIGPIPE = 141  # 128 + SIGPIPE: the shell's status of a command whose reader closed the pipe

__all__ = ["EXIT_CONFIG", "EXIT_FAILURE", "EXIT_OK", "EXIT_SIGPIPE", "build_parser", "main"]

CORE_COMMANDS = ("run", "validate", "schema", "version", "dlq", "plugins", "top", "test", "tap")


def build_parser(
    commands: Mapping[str, Command] | None = None, broken: Mapping[str, str] | None = None
) -> argparse.ArgumentParser:
    """The parser of the core commands plus `commands` (plugin commands, loaded); `broken` ones are listed."""
    epilog = None
    if broken:
        lines = [f"  {name}: {why}" for name, why in sorted(broken.items())]
        epilog = "broken command plugins (not available):\n" + "\n".join(lines)
    parser = argparse.ArgumentParser(
        prog="collector",
        description="Node-local collector for logs, metrics and traces.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the collector", description="Run the collector until SIGTERM.")
    add_config_argument(run)

    validate = sub.add_parser(
        "validate",
        help="check a config file without running it",
        description="Check a config file and report every error with its line. Exit 0 if valid, 2 if not. "
        "Nothing is started, opened or written.",
    )
    add_config_argument(validate)
    validate.add_argument("--format", choices=["text", "json"], default="text", help="report format")

    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the config",
        description="Print the JSON Schema of the whole config, for editors' YAML completion.",
    )
    schema.add_argument("-o", "--output", help="write to this file instead of stdout")

    sub.add_parser("version", help="print the version", description="Print the version.")

    dlq = sub.add_parser(
        "dlq",
        help="inspect and replay dead letters",
        description="Records a destination rejected for good are kept per output under data_dir/dead_letter/.",
    )
    dlq_sub = dlq.add_subparsers(dest="dlq_command", metavar="COMMAND", required=True)
    dlq_list = dlq_sub.add_parser("list", help="dead letters per output", description="Dead letters per output.")
    add_config_argument(dlq_list)
    dlq_list.add_argument("--format", choices=["text", "json"], default="text")
    dlq_show = dlq_sub.add_parser(
        "show",
        help="print an output's dead letters as JSON lines",
        description="Print an output's dead letters as JSON lines.",
    )
    dlq_show.add_argument("output", help="output name")
    add_config_argument(dlq_show)
    dlq_show.add_argument("--limit", type=int, help="print at most this many")
    dlq_replay = dlq_sub.add_parser(
        "replay",
        help="send an output's dead letters again",
        description="Send an output's dead letters again through that output, with its limits and retries. "
        "Records rejected again are kept as new dead letters; replayed files are removed. Exit 1 if any "
        "record was rejected again.",
    )
    dlq_replay.add_argument("output", help="output name")
    add_config_argument(dlq_replay)
    dlq_replay.add_argument(
        "--max-retries", type=int, default=5, help="retries per request before giving up on it (default: 5)"
    )

    plugins = sub.add_parser("plugins", help="list installed plugins", description="List installed plugins.")
    plugins.add_argument("--format", choices=["text", "json"], default="text")

    top = sub.add_parser(
        "top",
        help="live view of a running collector",
        description="Show a running collector's components and their throughput, refreshed live.",
    )
    top.add_argument(
        "--api", default=f"http://{API_LISTEN}", help=f"the collector's API (default: http://{API_LISTEN})"
    )
    top.add_argument("--interval", type=float, default=1.0, help="refresh interval in seconds (default: 1)")
    top.add_argument("--once", action="store_true", help="print one snapshot and exit")
    top.add_argument(
        "--window", type=float, default=30.0, help="rates are averaged over this many seconds (default: 30)"
    )
    tap = sub.add_parser(
        "tap",
        help="print the records components of a running collector emit",
        description="Print, as they flow, the records the named components emit (inputs and processors: what "
        "they pass on; outputs: what they send), sampled and rate limited; globs match several. Stops at "
        "--limit or Ctrl-C. Exit 2 if a name matches no component.",
    )
    tap.add_argument("names", nargs="+", metavar="NAME", help="component name or glob")
    tap.add_argument("--rate", type=float, default=100.0, help="at most this many records per second (default: 100)")
    tap.add_argument("--sample", type=float, default=1.0, help="keep this fraction of records (default: 1)")
    tap.add_argument("--limit", type=int, help="stop after this many records")
    tap.add_argument("--format", choices=["json", "text"], default="json", help="output format (default: json)")
    tap.add_argument("--api", default=API_LISTEN, help=f"the collector's API, HOST:PORT (default: {API_LISTEN})")
    _add_test_parser(sub)
    for name, command in sorted((commands or {}).items()):
        description = getattr(command, "description", None) or command.help
        command.add_arguments(sub.add_parser(name, help=command.help, description=description))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit status. A reader of stdout gone (`collector schema | head`) ends any
    command, core or plugin, `--help` included, quietly with 141."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a reader gone is found here, not in the interpreter's exit (a traceback there)
    except BrokenPipeError:
        return _stdout_closed()


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    table = discover_commands(reserved=CORE_COMMANDS)
    word = next((a for a in argv if not a.startswith("-")), None)
    commands: dict[str, Command] = {}
    if word in table.found:
        try:
            commands[word] = table.load(word)
        except BrokenCommand:
            pass
    elif word not in CORE_COMMANDS:
        commands = table.load_all()  # listing every command: --help, or no or an unknown command
    if word is not None and word in table.broken:
        print(f"collector: the command `{word}` is not available: {table.broken[word]}", file=sys.stderr)
        return EXIT_FAILURE
    args = build_parser(commands, table.broken).parse_args(argv)
    if "config" in args:  # one discovery rule for every command, core and plugin (collector/commands.py)
        args.config = find_config(args.config)
    core = {
        "run": _run,
        "validate": _validate,
        "schema": _schema,
        "version": _version,
        "plugins": _plugins,
        "top": _top,
        "tap": _tap,
        "dlq": _dlq,
        "test": _test,
    }
    try:
        if args.command in core:
            return core[args.command](args)
        return commands[args.command].run(args)
    except CommandFailed as exc:
        if exc.message:
            print(exc.message, file=sys.stderr)
        return exc.exit_status


def _stdout_closed() -> int:
    """The reader of stdout went away (`collector schema | head`): stop quietly, with the status a
    SIGPIPE gives (128 + 13), as `cat` and other Unix tools do; nothing on stderr.

    stdout is pointed at /dev/null so that the interpreter's final flush of what is still buffered
    does not raise again on the way out.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_SIGPIPE


def _run(args: argparse.Namespace) -> int:
    import uvloop

    from collector.config import ConfigError, load_config_lazily
    from collector.daemon import run_daemon
    from collector.log import configure_logging
    from collector.registry import load_registry

    configure_logging()
    try:
        config, registry = load_config_lazily(args.config)  # imports only the plugins the config names
    except ConfigError as exc:
        _report_broken(load_registry())
        print(exc.format(), file=sys.stderr)
        return EXIT_CONFIG
    _report_broken(registry)
    configure_logging(config.root.log.level, config.root.log.format, secrets=config.secret_values())
    for warning in config.warnings:
        logging.getLogger("collector.config").warning("config: %s", warning.format())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_daemon(args.config, config, registry))


def _validate(args: argparse.Namespace) -> int:
    from collector.config import ConfigError, load_config
    from collector.registry import load_registry

    registry = load_registry()
    try:
        config = load_config(args.config, registry)
    except ConfigError as exc:
        if args.format == "json":
            print(json.dumps({"valid": False, "errors": [i.as_dict() for i in exc.issues]}, indent=2))
        else:
            print(exc.format(), file=sys.stderr)
        return EXIT_CONFIG
    if args.format == "json":
        report = {
            "valid": True,
            "components": list(config.graph.components),
            "warnings": [w.as_dict() for w in config.warnings],
        }
        print(json.dumps(report, indent=2))
    else:
        n = len(config.graph.components)
        print(f"{args.config}: valid ({n} component{'s' if n != 1 else ''})")
        for warning in config.warnings:  # valid all the same: exit 0, the warning on stderr
            print(f"warning: {warning.format()}", file=sys.stderr)
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from collector.config.schema import config_schema
    from collector.registry import load_registry

    text = json.dumps(config_schema(load_registry()), indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    else:
        print(text)
    return EXIT_OK


def _version(args: argparse.Namespace) -> int:
    print(f"collector {__version__} (python {sys.version.split()[0]})")
    return EXIT_OK


def _plugins(args: argparse.Namespace) -> int:
    from collector.registry import load_registry

    registry = load_registry()
    rows = [
        {
            "type": name,
            "section": section,
            "accepts": sorted(cls.accepts),
            "emits": sorted(cls.emits),
            "description": cls.description,
        }
        for (section, name), cls in sorted(registry.plugins.items())
    ]
    if args.format == "json":
        print(json.dumps({"plugins": rows, "broken": registry.broken}, indent=2))
    else:
        for row in rows:
            print(f"{row['section']:<11} {row['type']:<18} {row['description']}")
        for name, why in registry.broken.items():
            print(f"{'broken':<11} {name:<18} {why}")
    return EXIT_OK


def _dlq(args: argparse.Namespace) -> int:
    from collector.config import ConfigError, load_config
    from collector.dlq_cli import run_dlq_command
    from collector.log import configure_logging

    configure_logging("warning")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.format(), file=sys.stderr)
        return EXIT_CONFIG
    return run_dlq_command(args, config)


def _top(args: argparse.Namespace) -> int:
    from collector.top import run_top

    return run_top(args.api, args.interval, args.once, args.window)


def _add_test_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = sub.add_parser(
        "test",
        help="run pipeline unit tests",
        description="Run the config's processors on the records of each test and check what comes out "
        "(docs/testing-pipelines.md). Exit 0 if all pass, 1 if any fails, 2 on an invalid config or test file.",
    )
    add_config_argument(test)
    test.add_argument("files", nargs="*", help="test files (default: the config's own `tests:`)")
    test.add_argument("--now", help="the clock while tests run (RFC 3339 or epoch seconds; default: real)")


def _test(args: argparse.Namespace) -> int:
    from collector.pipeline_tests_cli import run_test_command

    return run_test_command(args.config, args.files, args.now)


def _tap(args: argparse.Namespace) -> int:
    from collector.tap_cli import run_tap

    return run_tap(args.api, args.names, args.rate, args.sample, args.limit, args.format)


def _report_broken(registry: object) -> None:
    import logging

    from collector.log import kv

    for name, why in getattr(registry, "broken", {}).items():
        logging.getLogger("collector.registry").error("plugin failed to load", extra=kv(plugin=name, error=why))


if __name__ == "__main__":
    sys.exit(main())
