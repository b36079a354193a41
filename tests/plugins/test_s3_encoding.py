"""s3 object bodies: every record comes back from the compressed JSON lines, deterministically; Parquet columns."""

from __future__ import annotations

import gzip
import io
from typing import Any

import orjson
import pytest
import zstandard

from collector_plugins.common.record_encoding import encode_json
from collector_plugins.outputs.s3 import encoding as s3_encoding
from collector_plugins.outputs.s3.encoding import CHUNK_RECORDS, Encoding, ObjectEncoder, check_column_type
from collector_plugins.outputs.s3.output import DEFAULT_COLUMNS


def records(n: int) -> list[dict[str, Any]]:
    return [
        {"timestamp": 1764151200.0 + i / 1000, "message": f"line {i} " + "x" * (i % 50), "host": "h", "file": "/f"}
        for i in range(n)
    ]


@pytest.fixture
def encoder_for() -> Any:
    made: list[ObjectEncoder] = []

    def make(encoding: Encoding, columns: dict[str, str] | None = None) -> ObjectEncoder:
        encoder = ObjectEncoder(encoding, columns or dict(DEFAULT_COLUMNS))
        made.append(encoder)
        return encoder

    yield make
    for encoder in made:
        encoder.close()


@pytest.fixture(params=["isal", "zlib"])
def gzip_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both gzip engines: ISA-L when python-isal is installed (a dependency), zlib otherwise."""
    if request.param == "isal":
        pytest.importorskip("isal")
    else:
        monkeypatch.setattr(s3_encoding, "_isal_zlib", lambda: None)
    assert s3_encoding.gzip_backend() == request.param
    return str(request.param)


@pytest.mark.parametrize("n", [1, CHUNK_RECORDS, 2 * CHUNK_RECORDS + 7])
def test_gzip_objects_decompress_to_every_line(encoder_for: Any, n: int, gzip_backend: str) -> None:
    recs = records(n)
    body, raw = encoder_for(Encoding("json", "gzip")).encode(recs)
    lines = gzip.decompress(body)
    assert lines == encode_json(recs) and raw == len(lines)
    assert [orjson.loads(line) for line in lines.splitlines()] == recs


def test_gzip_output_is_deterministic_so_a_replay_writes_the_same_bytes(encoder_for: Any, gzip_backend: str) -> None:
    recs = records(3 * CHUNK_RECORDS)
    first, _ = encoder_for(Encoding("json", "gzip")).encode(recs)
    again, _ = encoder_for(Encoding("json", "gzip")).encode(recs)
    assert first == again
    assert first[4:8] == b"\0\0\0\0"  # no modification time in the gzip header


def test_levels_trade_size_for_speed(encoder_for: Any, gzip_backend: str) -> None:
    recs = records(5000)
    fast, _ = encoder_for(Encoding("json", "gzip", 1)).encode(recs)
    small, _ = encoder_for(Encoding("json", "gzip", 9)).encode(recs)
    assert len(small) < len(fast)
    assert gzip.decompress(small) == gzip.decompress(fast)


def test_zstd_and_plain_objects(encoder_for: Any) -> None:
    recs = records(CHUNK_RECORDS + 1)
    body, _ = encoder_for(Encoding("json", "zstd")).encode(recs)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(body) == encode_json(recs)
    plain, raw = encoder_for(Encoding("json", "none")).encode(recs)
    assert plain == encode_json(recs) and raw == len(plain)


def test_odd_values_never_fail_an_object(encoder_for: Any) -> None:
    recs = [{"timestamp": 1.0, "message": b"\xff raw bytes"}, {"timestamp": 2.0, "message": "ok", "obj": object()}]
    body, _ = encoder_for(Encoding("json", "gzip")).encode(recs)
    lines = [orjson.loads(line) for line in gzip.decompress(body).splitlines()]
    assert lines[0]["message"] == "\ufffd raw bytes" and lines[1]["message"] == "ok"


def test_extensions_and_content_types() -> None:
    assert (Encoding("json", "gzip").extension, Encoding("json", "gzip").content_type) == (
        ".json.gz",
        "application/gzip",
    )
    assert Encoding("json", "zstd").extension == ".json.zst"
    assert Encoding("json", "none").extension == ".json"
    assert Encoding("parquet", "snappy").extension == ".parquet"
    assert Encoding("json", "gzip").effective_level() == 1 and Encoding("json", "zstd").effective_level() == 3


def test_column_types_are_checked_and_normalised() -> None:
    assert check_column_type(" BIGINT ") == "bigint"
    assert check_column_type("map<string, string>") == "map<string,string>"
    assert check_column_type("decimal(10, 2)") == "decimal(10, 2)"
    with pytest.raises(ValueError, match="not an Athena column type"):
        check_column_type("string; DROP TABLE x")


def test_parquet_writes_the_columns_typed_and_coerces_what_does_not_fit(encoder_for: Any) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    columns = {"timestamp": "timestamp", "message": "string", "status": "bigint", "ok": "boolean", "Pod.Name": "string"}
    recs = [
        {"timestamp": 1764151200.5, "message": b"bytes", "status": 200, "ok": True, "Pod.Name": "p1", "other": 1},
        {"timestamp": 1764151201.0, "message": {"nested": 1}, "status": "503", "ok": "yes"},
        {"message": 7, "status": "n/a"},
    ]
    body, raw = encoder_for(Encoding("parquet", "snappy"), columns).encode(recs)
    assert raw == len(body) and body[:4] == b"PAR1"
    table = pq.read_table(io.BytesIO(body))
    assert table.column_names == ["timestamp", "message", "status", "ok", "pod_name"]
    rows = table.to_pylist()
    assert [r["message"] for r in rows] == ["bytes", '{"nested":1}', "7"]
    assert [r["status"] for r in rows] == [200, 503, None]
    assert [r["ok"] for r in rows] == [True, None, None]
    assert rows[0]["timestamp"].isoformat() == "2025-11-26T10:00:00.500000"
    assert rows[2]["timestamp"] is None and rows[0]["pod_name"] == "p1"


def test_parquet_needs_pyarrow_only_when_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError("no pyarrow here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    assert s3_encoding.parquet_available() is False
    assert s3_encoding.zstd_available() is True


def test_an_uninstalled_codec_is_a_config_error_not_a_failing_send(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from collector_plugins.outputs.s3.output import S3Config

    monkeypatch.setattr("collector_plugins.outputs.s3.output.zstd_available", lambda: False)
    monkeypatch.setattr("collector_plugins.outputs.s3.output.parquet_available", lambda: False)
    body = {"type": "s3", "inputs": ["a"], "bucket": "logs-bucket"}
    with pytest.raises(ValidationError, match=r"node-collector\[zstd\]"):
        S3Config.model_validate({**body, "compression": "zstd"})
    with pytest.raises(ValidationError, match=r"node-collector\[parquet\]"):
        S3Config.model_validate({**body, "format": "parquet"})
