"""Commands that plugins add to the `collector` CLI, through the `node_collector.commands` entry-point group.

Design note. The core knows no plugin: a plugin that brings its own command
(`collector trace`, `collector athena-ddl`, `collector status files`) registers
it the way it registers a component, with an entry point, and the CLI finds it
there. The contract is `Command`: a `name` (the word after `collector`, equal
to the entry point's name), a one-line `help`, optionally a longer
`description`, `add_arguments(parser)` and `run(args) -> exit status`. The
entry point names a class (built with no arguments) or an instance.

Loading is lazy. Finding the entry points reads installed metadata only; a
command's module is imported when that command runs, or when the CLI lists
every command (`collector --help`, an unknown or missing command). So `collector
run` imports no plugin command, and a command's module should keep its own
heavy imports inside `run`, since `--help` imports it.

A command that fails to import, is not a `Command` or has a name other than
its entry point's is broken: `collector --help` lists it with the reason, and
running it prints the reason and exits 1; the other commands work. As for
component plugins (collector/registry.py), two distributions registering the
same command name is an error, not a choice (which one would win depends on
the order of `sys.path`): neither is used and the message names both. A plugin
command cannot take the name of a core command.

Helpers for commands: `add_config_argument` (the core's `-c/--config` option),
`load_config` (the config, or `CommandFailed` with the same report as
`collector validate`), and `CommandFailed`, which the CLI turns into a message
on stderr and an exit status.

Which config a command reads is one rule for every command, `find_config`:
`-c/--config`, else `$COLLECTOR_CONFIG`, else `./collector.yaml` if it exists,
else `/etc/collector/collector.yaml`. The CLI applies it once after parsing, so
a command's `args.config` is always a path; `load_config(None)` applies it too.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from collector.defaults import COMMAND_ENTRY_POINT_GROUP, CONFIG_PATH

if TYPE_CHECKING:
    from collector.config.loader import Config
    from collector.registry import Registry

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2


@runtime_checkable
class Command(Protocol):
    """A `collector NAME ...` subcommand contributed by a plugin."""

    name: str  # the word after `collector`; equal to the entry point's name
    help: str  # one line, shown by `collector --help`

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's arguments (and subcommands, if it has any) to its own parser."""

    def run(self, args: argparse.Namespace) -> int:
        """Do the work; return the exit status (or raise `CommandFailed`)."""


class CommandFailed(Exception):
    """Raised by a command: print `message` (if any) to stderr and exit with `exit_status`."""

    def __init__(self, message: str, exit_status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_status = exit_status


class BrokenCommand(Exception):
    """A command plugin that cannot be used; the message says why."""


CONFIG_ENV = "COLLECTOR_CONFIG"
LOCAL_CONFIG = "collector.yaml"
CONFIG_RULE = f"${CONFIG_ENV}, else ./{LOCAL_CONFIG} if it exists, else {CONFIG_PATH}"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """The `-c/--config` option of every command that reads a config; `find_config` fills it in when omitted."""
    parser.add_argument("-c", "--config", default=None, help=f"config file (default: {CONFIG_RULE})")


def find_config(
    explicit: str | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    system: str = CONFIG_PATH,
) -> str:
    """The config file a command reads: `explicit` (-c), else $COLLECTOR_CONFIG, else ./collector.yaml
    if it exists, else `system` (/etc/collector/collector.yaml).

    The first two are taken as given (a missing file is then reported as such, not replaced by another
    file the operator did not name); `./collector.yaml` only counts if it is there, so a command run from
    any directory on a node finds the system config.
    """
    if explicit:
        return explicit
    env = os.environ if environ is None else environ
    if env.get(CONFIG_ENV):
        return env[CONFIG_ENV]
    local = (Path.cwd() if cwd is None else cwd) / LOCAL_CONFIG
    if local.is_file():
        return LOCAL_CONFIG if cwd is None else str(local)
    return system


def load_config(path: str | None, registry: Registry | None = None) -> Config:
    """The validated config at `path` (`find_config` when None); `CommandFailed` (exit 2, every error with
    its line) if it is not valid."""
    from collector.config import ConfigError
    from collector.config import load_config as load

    try:
        return load(find_config(path), registry)
    except ConfigError as exc:
        raise CommandFailed(exc.format(), EXIT_CONFIG) from exc


def origin_of(ep: EntryPoint) -> str:
    """Where an entry point comes from, for messages: `distribution (module:attr)`."""
    dist = getattr(ep, "dist", None)
    return f"{dist.name if dist is not None else 'an unknown distribution'} ({ep.value})"


@dataclass
class CommandTable:
    """The installed command plugins, found but not imported."""

    found: dict[str, EntryPoint] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)  # command name -> why it cannot be used

    def load(self, name: str) -> Command:
        """Import the command `name`; `BrokenCommand` (and it is recorded as broken) if that fails."""
        ep = self.found[name]
        try:
            command = _instantiate(ep)
        except BrokenCommand as exc:
            del self.found[name]
            self.broken[name] = str(exc)
            raise
        return command

    def load_all(self) -> dict[str, Command]:
        loaded: dict[str, Command] = {}
        for name in sorted(self.found):
            try:
                loaded[name] = self.load(name)
            except BrokenCommand:
                continue
        return loaded


def _instantiate(ep: EntryPoint) -> Command:
    origin = origin_of(ep)
    try:
        obj = ep.load()
        command = obj() if isinstance(obj, type) else obj
    except Exception as exc:  # a broken plugin must not stop the CLI
        raise BrokenCommand(f"{origin} failed to load: {type(exc).__name__}: {exc}") from exc
    if not isinstance(command, Command):
        raise BrokenCommand(f"{origin} is not a collector command (name, help, add_arguments, run)")
    if command.name != ep.name:
        raise BrokenCommand(f"entry point name {ep.name!r} differs from the command's name {command.name!r} ({origin})")
    return command


def discover_commands(reserved: Iterable[str] = (), group: str = COMMAND_ENTRY_POINT_GROUP) -> CommandTable:
    """Every command registered in `group`, not imported; names in `reserved` (the core's) are refused."""
    table = CommandTable()
    reserved = set(reserved)
    origins: dict[str, list[str]] = {}
    for ep in entry_points(group=group):
        origins.setdefault(ep.name, []).append(origin_of(ep))
        if ep.name in reserved:
            table.broken[ep.name] = f"{origin_of(ep)} registers `{ep.name}`, which is a core command; it is not used"
            continue
        table.found.setdefault(ep.name, ep)
    for name, where in origins.items():
        if len(where) > 1 and name not in reserved:
            del table.found[name]
            table.broken[name] = (
                f"the command `{name}` is registered by more than one distribution: "
                f"{' and '.join(where)}; uninstall all but one"
            )
    return table
