"""`collector athena-ddl OUTPUT`: the Athena table over what an `s3` output writes, exactly as it lays it out.

The table's columns are the output's `columns` (record fields with Athena
types). Its partitions come from the key prefix, one path segment at a time:

- `name=VALUE` (Hive style) makes a partition column `name`; a segment that is
  only a placeholder (`{host}/`) makes one named after it (`%Y` → `year`, ...);
- a value that is one date part (`{%Y}`, `{%m}`, `{%d}`, `{%H}`, `{%M}`) is
  projected as `integer` (with leading zeros: `digits`), one made of several
  (`dt={%Y}-{%m}-{%d}`) as `date` with the matching Java format;
- any other placeholder (a host fact, a record field) is projected as `enum`
  when `athena.partition_values` lists its values, else as `injected`
  (queries must name the value);
- text around a placeholder is kept (`host=ip-{host}`); literal segments stay
  literal.

`storage.location.template` is the prefix with each placeholder replaced by
`${column}`, so Athena reads exactly the objects the output writes; the table
needs no `MSCK REPAIR` and no crawler. A data column with the name of a
partition column is left out (Athena forbids the clash): the partition's
value is what queries see under that name.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from collector_plugins.common.record_templates import parse_record_template
from collector_plugins.outputs.s3_encoding import column_name

if TYPE_CHECKING:  # the s3 output's module is heavy; `collector --help` imports this one
    from collector_plugins.outputs.s3 import S3Config

_TIME_COLUMNS = {"%Y": "year", "%m": "month", "%d": "day", "%H": "hour", "%M": "minute", "%S": "second"}
_INTEGER_RANGES = {"%m": (1, 12), "%d": (1, 31), "%H": (0, 23), "%M": (0, 59), "%S": (0, 59)}
_JAVA_FORMAT = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss"}
_DATE_UNITS = [("%S", "SECONDS"), ("%M", "MINUTES"), ("%H", "HOURS"), ("%d", "DAYS"), ("%m", "MONTHS"), ("%Y", "YEARS")]
_LAST_YEAR = 2099


class DdlError(ValueError):
    """The output's layout cannot be described as an Athena table."""


@dataclass
class Partition:
    column: str
    properties: dict[str, str] = field(default_factory=dict)  # projection.<column>.* without the prefix


@dataclass
class Layout:
    location: str  # s3://bucket/literal-prefix/
    template: str  # storage.location.template
    partitions: list[Partition]


def _java_literal(text: str) -> str:
    """Text between date parts in a Java DateTimeFormatter pattern: letters quoted."""
    if not any(c.isalpha() or c == "'" for c in text):
        return text
    return "'" + text.replace("'", "''") + "'"


def _time_partition(column: str, parts: list[tuple[str, str]], first_year: int) -> Partition:
    directives = [value for kind, value in parts if kind == "name"]
    if len(directives) == 1 and len(parts) == 1:
        directive = directives[0]
        if directive == "%Y":
            return Partition(column, {"type": "integer", "range": f"{first_year},{_LAST_YEAR}"})
        low, high = _INTEGER_RANGES[directive]
        return Partition(column, {"type": "integer", "range": f"{low},{high}", "digits": "2"})
    java = "".join(_JAVA_FORMAT[v] if kind == "name" else _java_literal(v) for kind, v in parts)
    start = datetime(first_year, 1, 1)
    first = "".join(start.strftime(v) if kind == "name" else v for kind, v in parts)
    unit = next(u for d, u in _DATE_UNITS if d in directives)
    return Partition(
        column,
        {"type": "date", "format": java, "range": f"{first},NOW", "interval": "1", "interval.unit": unit},
    )


def layout(config: S3Config) -> Layout:
    """The table location, location template and partitions of the keys `config` writes."""
    prefix = config.prefix
    if not prefix.endswith("/"):
        raise DdlError(
            f"prefix {prefix!r} does not end with '/': its last part is in the object names, and an Athena "
            "table reads whole directories"
        )
    athena = config.athena
    literal_path: list[str] = []
    template: list[str] = []
    partitions: list[Partition] = []
    seen_placeholder = False
    for segment in prefix[:-1].split("/"):
        parts = parse_record_template(segment)
        names = [value for kind, value in parts if kind == "name"]
        if not names:
            text = "".join(value for _, value in parts)
            template.append(text)
            if not seen_placeholder:
                literal_path.append(text)
            continue
        seen_placeholder = True
        label, value_parts = None, parts
        if parts[0][0] == "text" and "=" in parts[0][1]:
            label, _, rest = parts[0][1].partition("=")
            value_parts = ([("text", rest)] if rest else []) + parts[1:]
        times = [n for n in names if n in _TIME_COLUMNS]
        if times and len(times) != len(names):
            raise DdlError(f"segment {segment!r} mixes date parts and other placeholders: split it in two segments")
        if not times and len(names) > 1:
            raise DdlError(f"segment {segment!r} has several placeholders: give each its own segment")
        column = column_name(label if label else (_TIME_COLUMNS.get(names[0]) or names[0]))
        if any(p.column == column for p in partitions):
            raise DdlError(f"two segments make the partition column {column!r}: name them apart (name={{...}})")
        if times:
            partitions.append(_time_partition(column, value_parts, athena.first_year))
        elif column in athena.partition_values:
            values = athena.partition_values[column]
            partitions.append(Partition(column, {"type": "enum", "values": ",".join(values)}))
        else:
            partitions.append(Partition(column, {"type": "injected"}))
        if times:  # the whole value is the projected date (its literal text is in the format)
            rendered_value = f"${{{column}}}"
        else:
            rendered_value = "".join(f"${{{column}}}" if kind == "name" else v for kind, v in value_parts)
        template.append(f"{label}={rendered_value}" if label else rendered_value)
    base = f"s3://{config.bucket}/"
    location = base + "".join(f"{p}/" for p in literal_path)
    return Layout(location, base + "".join(f"{t}/" for t in template), partitions)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "\\'") + "'"


def athena_ddl(config: S3Config, output_name: str, *, table: str | None = None, database: str | None = None) -> str:
    """The CREATE EXTERNAL TABLE statement (with partition projection) for the output's objects."""
    lay = layout(config)
    table_name = table or config.athena.table or column_name(output_name)
    database_name = database or config.athena.database
    partition_names = {p.column for p in lay.partitions}
    columns = [(column_name(f), t, f) for f, t in config.columns.items()]
    kept = [(c, t, f) for c, t, f in columns if c not in partition_names]
    left_out = [c for c, _, _ in columns if c in partition_names]
    lines = [f"CREATE EXTERNAL TABLE IF NOT EXISTS `{database_name}`.`{table_name}` ("]
    lines.append(",\n".join(f"  `{c}` {t}" for c, t, _ in kept))
    lines.append(")")
    if lay.partitions:
        lines.append("PARTITIONED BY (")
        lines.append(",\n".join(f"  `{p.column}` string" for p in lay.partitions))
        lines.append(")")
    if config.format == "parquet":
        lines.append("STORED AS PARQUET")
    else:
        lines.append("ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'")
        mappings = [(c, f) for c, _, f in kept if c != f]
        if mappings:
            props = ",\n".join(f"  {_quote('mapping.' + c)} = {_quote(f)}" for c, f in mappings)
            lines.append(f"WITH SERDEPROPERTIES (\n{props}\n)")
    lines.append(f"LOCATION {_quote(lay.location)}")
    properties = [("projection.enabled", "true")]
    for p in lay.partitions:
        properties.extend((f"projection.{p.column}.{k}", v) for k, v in p.properties.items())
    properties.append(("storage.location.template", lay.template))
    body = ",\n".join(f"  {_quote(k)} = {_quote(v)}" for k, v in properties)
    lines.append(f"TBLPROPERTIES (\n{body}\n);")
    header = []
    if left_out:
        header.append(f"-- {', '.join(left_out)}: partition column(s) from the key, so not read from the records")
    if any(p.properties.get("type") == "injected" for p in lay.partitions):
        injected = ", ".join(p.column for p in lay.partitions if p.properties.get("type") == "injected")
        header.append(f"-- queries must give a value for the injected partition column(s): {injected}")
    return "\n".join([*header, *lines]) + "\n"


def run(args: argparse.Namespace) -> int:
    """The `collector athena-ddl` command: 0 printed, 1 not an s3 output or not describable, 2 bad config."""
    from collector.commands import load_config
    from collector.registry import load_registry
    from collector_plugins.outputs.s3 import S3Config

    config = load_config(args.config, load_registry())
    spec = config.graph.components.get(args.output)
    if spec is None or spec.section != "outputs":
        outputs = sorted(n for n, s in config.graph.components.items() if s.section == "outputs")
        print(f"no output named {args.output!r} (outputs: {', '.join(outputs) or 'none'})", file=sys.stderr)
        return 1
    if not isinstance(spec.config, S3Config):
        print(f"output {args.output!r} is of type {spec.config.type}, not s3", file=sys.stderr)
        return 1
    try:
        print(athena_ddl(spec.config, args.output, table=args.table, database=args.database), end="")
    except DdlError as exc:
        print(f"output {args.output!r}: {exc}", file=sys.stderr)
        return 1
    return 0


class AthenaDdlCommand:
    """`collector athena-ddl`, registered in the `node_collector.commands` entry-point group."""

    name = "athena-ddl"
    help = "print the Athena table over an s3 output's objects"
    description = (
        "Print the CREATE EXTERNAL TABLE statement (with partition projection) that makes an s3 "
        "output's objects queryable in Athena exactly as the output lays them out."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from collector.commands import add_config_argument

        parser.add_argument("output", help="name of an s3 output")
        add_config_argument(parser)
        parser.add_argument("--table", help="table name (default: the output's athena.table, else its name)")
        parser.add_argument("--database", help="database (default: the output's athena.database, else default)")

    def run(self, args: argparse.Namespace) -> int:
        return run(args)
