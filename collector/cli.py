"""The `collector` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from collector import __version__
from collector.defaults import API_LISTEN, CONFIG_PATH

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="collector",
        description="Node-local collector for logs, metrics and traces.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    default_config = os.environ.get("COLLECTOR_CONFIG", CONFIG_PATH)

    def add_config(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "-c", "--config", default=default_config, help=f"config file (default: $COLLECTOR_CONFIG or {CONFIG_PATH})"
        )

    run = sub.add_parser("run", help="run the collector", description="Run the collector until SIGTERM.")
    add_config(run)

    validate = sub.add_parser(
        "validate",
        help="check a config file without running it",
        description="Check a config file and report every error with its line. Exit 0 if valid, 2 if not. "
        "Nothing is started, opened or written.",
    )
    add_config(validate)
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
    add_config(dlq_list)
    dlq_list.add_argument("--format", choices=["text", "json"], default="text")
    dlq_show = dlq_sub.add_parser(
        "show",
        help="print an output's dead letters as JSON lines",
        description="Print an output's dead letters as JSON lines.",
    )
    dlq_show.add_argument("output", help="output name")
    add_config(dlq_show)
    dlq_show.add_argument("--limit", type=int, help="print at most this many")
    dlq_replay = dlq_sub.add_parser(
        "replay",
        help="send an output's dead letters again",
        description="Send an output's dead letters again through that output, with its limits and retries. "
        "Records rejected again are kept as new dead letters; replayed files are removed. Exit 1 if any "
        "record was rejected again.",
    )
    dlq_replay.add_argument("output", help="output name")
    add_config(dlq_replay)
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
    status = sub.add_parser(
        "status",
        help="inspect input positions (works while the collector is stopped)",
        description="Show what the inputs have read and had acknowledged, from the data directory.",
    )
    status_sub = status.add_subparsers(dest="status_command", metavar="WHAT", required=True)
    status_files = status_sub.add_parser(
        "files",
        help="per watched file: identity, checkpointed offset, size, unread bytes",
        description="For every file-type input: each checkpointed or matching file with its device:inode, "
        "fingerprint, acknowledged offset, current size and unread bytes.",
    )
    add_config(status_files)
    status_files.add_argument("--format", choices=["text", "json"], default="text")
    athena = sub.add_parser(
        "athena-ddl",
        help="print the Athena table over an s3 output's objects",
        description="Print the CREATE EXTERNAL TABLE statement (with partition projection) that makes an s3 "
        "output's objects queryable in Athena exactly as the output lays them out.",
    )
    athena.add_argument("output", help="name of an s3 output")
    add_config(athena)
    athena.add_argument("--table", help="table name (default: the output's athena.table, else its name)")
    athena.add_argument("--database", help="database (default: the output's athena.database, else default)")
    trace = sub.add_parser(
        "trace",
        help="print one trace's segments and log lines from the local index",
        description="Print the segments and log lines of one trace, in time order, from the trace_index outputs "
        "of the config (works while the network is down). Exit 0 if found, 1 if not, 2 for a malformed id.",
    )
    trace.add_argument("trace_id", help="X-Ray (1-5759e988-bd86...) or W3C (5759e988bd86...) trace id")
    add_config(trace)
    trace.add_argument("--format", choices=["text", "json"], default="text", help="output format")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {
        "run": _run,
        "validate": _validate,
        "schema": _schema,
        "version": _version,
        "plugins": _plugins,
        "top": _top,
        "dlq": _dlq,
        "status": _status,
        "athena-ddl": _athena_ddl,
        "trace": _trace,
    }[args.command]
    return handler(args)


def _run(args: argparse.Namespace) -> int:
    import uvloop

    from collector.config import ConfigError, load_config
    from collector.daemon import run_daemon
    from collector.log import configure_logging
    from collector.registry import load_registry

    configure_logging()
    registry = load_registry()
    _report_broken(registry)
    try:
        config = load_config(args.config, registry)
    except ConfigError as exc:
        print(exc.format(), file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(config.root.log.level, config.root.log.format)
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
        print(json.dumps({"valid": True, "components": list(config.graph.components)}, indent=2))
    else:
        n = len(config.graph.components)
        print(f"{args.config}: valid ({n} component{'s' if n != 1 else ''})")
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

    return run_top(args.api, args.interval, args.once)


def _athena_ddl(args: argparse.Namespace) -> int:
    from collector_plugins.outputs.s3.athena import run

    return run(args)


def _trace(args: argparse.Namespace) -> int:
    from collector.config import ConfigError, load_config
    from collector_plugins.outputs.trace_index.cli import run_trace_command

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.format(), file=sys.stderr)
        return EXIT_CONFIG
    return run_trace_command(args, config)


def _status(args: argparse.Namespace) -> int:
    from collector_plugins.inputs.file.status import run

    return run(args)


def _report_broken(registry: object) -> None:
    import logging

    from collector.log import kv

    for name, why in getattr(registry, "broken", {}).items():
        logging.getLogger("collector.registry").error("plugin failed to load", extra=kv(plugin=name, error=why))


if __name__ == "__main__":
    sys.exit(main())
