"""`collector athena-ddl`: the table's partitions and location template follow the output's key prefix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from collector.cli import main
from collector_plugins.outputs.s3.athena import DdlError, athena_ddl, layout
from collector_plugins.outputs.s3.output import S3Config


def config(**body: Any) -> S3Config:
    return S3Config.model_validate({"type": "s3", "inputs": ["app"], "bucket": "logs-bucket", **body})


def properties(ddl: str) -> dict[str, str]:
    """TBLPROPERTIES as written: Hive string literals, quotes inside escaped with a backslash."""
    pairs = re.findall(r"^  '((?:[^'\\]|\\.)*)' = '((?:[^'\\]|\\.)*)'", ddl, flags=re.M)
    return {k: re.sub(r"\\(.)", r"\1", v) for k, v in pairs}


def test_default_layout_hive_partitions_by_hour_and_host() -> None:
    ddl = athena_ddl(config(), "archive")
    assert "CREATE EXTERNAL TABLE IF NOT EXISTS `default`.`archive` (" in ddl
    assert "ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'" in ddl
    assert "LOCATION 's3://logs-bucket/logs/'" in ddl
    columns = re.search(r"\(\n(.*?)\n\)\nPARTITIONED", ddl, flags=re.S)
    assert columns is not None and columns.group(1).split(",\n") == [
        "  `timestamp` double",
        "  `message` string",
        "  `file` string",  # host is a partition column: not also a data column
    ]
    assert (
        "PARTITIONED BY (\n  `year` string,\n  `month` string,\n  `day` string,\n  `hour` string,\n  `host` string\n)"
        in ddl
    )
    props = properties(ddl)
    assert props["projection.enabled"] == "true"
    assert (props["projection.year.type"], props["projection.year.range"]) == ("integer", "2020,2099")
    assert (props["projection.month.range"], props["projection.month.digits"]) == ("1,12", "2")
    assert (props["projection.day.range"], props["projection.hour.range"]) == ("1,31", "0,23")
    assert props["projection.host.type"] == "injected"
    assert props["storage.location.template"] == (
        "s3://logs-bucket/logs/year=${year}/month=${month}/day=${day}/hour=${hour}/host=${host}/"
    )
    assert "-- queries must give a value for the injected partition column(s): host" in ddl


def test_a_date_partition_and_a_record_field_enum() -> None:
    c = config(
        prefix="k8s/ns={kubernetes.namespace}/dt={%Y}-{%m}-{%d}T{%H}/",
        athena={"table": "pods", "database": "logs", "first_year": 2024, "partition_values": {"ns": ["a", "b"]}},
        columns={"timestamp": "double", "message": "string", "kubernetes.pod": "string"},
    )
    ddl = athena_ddl(c, "ignored")
    props = properties(ddl)
    assert "`logs`.`pods`" in ddl
    assert (props["projection.ns.type"], props["projection.ns.values"]) == ("enum", "a,b")
    assert props["projection.dt.type"] == "date"
    assert props["projection.dt.format"] == "yyyy-MM-dd'T'HH"
    assert props["projection.dt.range"] == "2024-01-01T00,NOW"
    assert props["projection.dt.interval.unit"] == "HOURS"
    assert props["storage.location.template"] == "s3://logs-bucket/k8s/ns=${ns}/dt=${dt}/"
    assert "LOCATION 's3://logs-bucket/k8s/'" in ddl
    assert "'mapping.kubernetes_pod' = 'kubernetes.pod'" in ddl  # a field name Athena cannot take as is


def test_plain_placeholder_segments_are_named_after_the_placeholder() -> None:
    lay = layout(config(prefix="{host}/{%Y}/{%m}/"))
    assert [p.column for p in lay.partitions] == ["host", "year", "month"]
    assert lay.template == "s3://logs-bucket/${host}/${year}/${month}/"
    assert lay.location == "s3://logs-bucket/"


def test_parquet_tables_are_stored_as_parquet() -> None:
    pytest.importorskip("pyarrow")
    ddl = athena_ddl(config(format="parquet", compression="snappy"), "p")
    assert "STORED AS PARQUET" in ddl and "JsonSerDe" not in ddl


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("logs/{host}-", "does not end with '/'"),
        ("logs/{host}-{%Y}/", "mixes date parts"),
        ("logs/{host}{stream}/", "several placeholders"),
        ("logs/{%Y}/year={%Y}/", "two segments make the partition column 'year'"),
    ],
)
def test_layouts_athena_cannot_project_are_refused(prefix: str, message: str) -> None:
    with pytest.raises(DdlError, match=message):
        layout(config(prefix=prefix))


def write_config(tmp_path: Path, outputs: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"data_dir: {tmp_path / 'data'}\ninputs:\n  app: {{type: generator}}\noutputs:\n{outputs}")
    return path


def test_the_command_prints_the_ddl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, "  archive: {type: s3, inputs: [app], bucket: logs-bucket}\n")
    assert main(["athena-ddl", "archive", "-c", str(path), "--table", "t1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("-- host") and "`default`.`t1`" in out and out.endswith(");\n")


def test_the_command_refuses_what_is_not_an_s3_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(
        tmp_path,
        "  archive: {type: s3, inputs: [app], bucket: logs-bucket, prefix: 'x/{host}-'}\n"
        "  local: {type: file, inputs: [app], path: out.jsonl}\n",
    )
    assert main(["athena-ddl", "nope", "-c", str(path)]) == 1
    assert "no output named 'nope' (outputs: archive, local)" in capsys.readouterr().err
    assert main(["athena-ddl", "local", "-c", str(path)]) == 1
    assert "is of type file, not s3" in capsys.readouterr().err
    assert main(["athena-ddl", "archive", "-c", str(path)]) == 1
    assert "does not end with '/'" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("outputs: {x: {type: s3}}\n")
    assert main(["athena-ddl", "x", "-c", str(tmp_path / "bad.yaml")]) == 2
