"""`collector import cloudwatch-agent FILE` / `collector import xray-daemon FILE`: print our config for theirs.

Registered in the `node_collector.commands` entry-point group. The source
file is parsed here (JSON for the CloudWatch agent, YAML for the X-Ray
daemon); an unreadable or malformed file exits 2 with the reason, like an
invalid config does for `collector validate`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

AGENTS = {
    "cloudwatch-agent": "the CloudWatch agent's JSON config (amazon-cloudwatch-agent.json)",
    "xray-daemon": "the X-Ray daemon's YAML config (cfg.yaml)",
}


class ImportCommand:
    name = "import"
    help = "translate a CloudWatch agent or X-Ray daemon config into a collector config"
    description = (
        "Print a collector config that does what another agent's config does. Keys with no equivalent are "
        "kept as `# not translated: ...` comments. See docs/migration.md."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("agent", choices=sorted(AGENTS), help="which agent's config FILE is")
        parser.add_argument("file", help="the agent's config file ('-' reads stdin)")
        parser.add_argument("-o", "--output", help="write the config here instead of stdout")

    def run(self, args: argparse.Namespace) -> int:
        from collector.commands import EXIT_CONFIG, EXIT_OK, CommandFailed
        from collector_plugins.commands.importers.document import ImportFailed

        try:
            text = _read(args.file)
            rendered = translate(args.agent, text, args.file)
        except ImportFailed as exc:
            raise CommandFailed(f"collector import: {exc}", EXIT_CONFIG) from None
        problems = _validation_report(rendered)
        if args.output:
            try:
                Path(args.output).write_text(rendered, encoding="utf-8")
            except OSError as exc:
                raise CommandFailed(f"collector import: cannot write {args.output}: {exc.strerror}") from None
        else:
            sys.stdout.write(rendered)
        if problems:
            # Written all the same, so that the user can fix the few values our plugins refuse.
            raise CommandFailed(f"collector import: the translation does not validate:\n{problems}", EXIT_CONFIG)
        return EXIT_OK


def _validation_report(rendered: str) -> str:
    """`collector validate`'s report on the translation ("" when valid): a value the agent took and we refuse."""
    from collector.config import ConfigError
    from collector.config.loader import parse_config

    try:
        parse_config(rendered, "<translation>", environ={})
    except ConfigError as exc:
        return exc.format()
    return ""


def _read(path: str) -> str:
    from collector_plugins.commands.importers.document import ImportFailed

    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ImportFailed(f"cannot read {path}: {reason}") from None


def translate(agent: str, text: str, source: str) -> str:
    """Our config (commented YAML) for `text`, the config of `agent`; raises ImportFailed."""
    from collector_plugins.commands.importers import cloudwatch_agent, xray_daemon
    from collector_plugins.commands.importers.document import ImportFailed

    parsed: Any
    if agent == "cloudwatch-agent":
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportFailed(f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
        doc = cloudwatch_agent.translate(parsed, source)
    else:
        import yaml

        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ImportFailed(f"{source}: not valid YAML: {exc}") from None
        doc = xray_daemon.translate(parsed, source)
    if not any(doc.sections.values()):
        # A config with nothing to run would not validate: say what was there instead of printing it.
        raise ImportFailed(f"{source}: nothing to translate; " + ("; ".join(doc.notes) or "the config is empty"))
    return doc.render()
