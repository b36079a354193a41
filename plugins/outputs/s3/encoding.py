"""Object bodies of the `s3` output: JSON lines (gzip, zstd or plain) or Parquet.

`ObjectEncoder.encode(records)` is blocking and runs in a worker thread, never
on the event loop. For JSON lines it is a two-stage pipeline: this thread
encodes a chunk of records (orjson, holding the GIL) while a second thread
compresses the previous chunk (zlib and zstandard release the GIL while they
work), so encoding and compression overlap on two cores and neither stalls the
event loop. Compression is the costlier stage. Measured here on 200-byte log
lines as JSON lines (ratios are JSON bytes / object bytes): zlib level 1
~130-180 MiB/s (3.45), level 6 ~50-85 MiB/s (3.8); zstd level 3 (4.1). With
python-isal installed (a dependency of the collector), gzip goes through ISA-L's igzip:
~310 MiB/s at level 1 with zlib level 1's ratio; zlib levels 1-2, 3-5 and 6-9
map to igzip's 1, 2 and 3. Defaults: gzip level 1 (what keeps one output above
100 MiB/s of input with zlib alone), zstd level 3.

Output is deterministic: the gzip header carries no time or name, so the same
records always give the same bytes and a replayed object is identical to the
one it overwrites.

Parquet (`format: parquet`, needs pyarrow: the `parquet` extra) writes exactly
the configured columns with their Athena types; values that do not fit a
column's type are converted (text for string columns) or become null, never an
error for the whole object.
"""

from __future__ import annotations

import io
import re
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from collector_plugins.common.record_encoding import encode_json

Format = Literal["json", "parquet"]
Compression = Literal["gzip", "zstd", "snappy", "none"]

DEFAULT_LEVEL = {"gzip": 1, "zstd": 3}
LEVELS = {"gzip": (1, 9), "zstd": (1, 19)}
CHUNK_RECORDS = 4096  # ~1 MiB of JSON lines: big enough that a compress call releases the GIL for a while

_EXTENSIONS = {
    ("json", "gzip"): (".json.gz", "application/gzip"),
    ("json", "zstd"): (".json.zst", "application/zstd"),
    ("json", "none"): (".json", "application/x-ndjson"),
}
PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"

# Athena column types a Parquet column can be written as (JSON lines take any type: the SerDe reads it).
PARQUET_TYPES = frozenset(
    {"string", "double", "float", "bigint", "int", "smallint", "tinyint", "boolean", "timestamp"}
    | {"array<string>", "map<string,string>"}
)
_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(<[a-z0-9_<>,: ]+>|\(\d+(,\s*\d+)?\))?$")


def check_column_type(athena_type: str) -> str:
    """The type normalised (lower case, no spaces in <>), or ValueError when it is not an Athena type."""
    normalised = athena_type.strip().lower()
    if "<" in normalised:
        normalised = re.sub(r"\s+", "", normalised)
    if not _TYPE_RE.match(normalised):
        raise ValueError(f"{athena_type!r} is not an Athena column type (string, double, bigint, boolean, ...)")
    return normalised


@dataclass(frozen=True)
class Encoding:
    """What an object's bytes are: format, compression and level, and so its extension and content type."""

    format: Format
    compression: Compression
    level: int | None = None

    @property
    def extension(self) -> str:
        if self.format == "parquet":
            return ".parquet"
        return _EXTENSIONS[("json", self.compression)][0]

    @property
    def content_type(self) -> str:
        if self.format == "parquet":
            return PARQUET_CONTENT_TYPE
        return _EXTENSIONS[("json", self.compression)][1]

    def effective_level(self) -> int | None:
        if self.compression not in DEFAULT_LEVEL:
            return None
        return self.level if self.level is not None else DEFAULT_LEVEL[self.compression]


def _isal_zlib() -> Any:
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


def gzip_backend() -> str:
    """`isal` (ISA-L's igzip, when python-isal is installed) or `zlib`."""
    return "isal" if _isal_zlib() is not None else "zlib"


_ISAL_LEVEL = {1: 1, 2: 1, 3: 2, 4: 2, 5: 2, 6: 3, 7: 3, 8: 3, 9: 3}


def _compressor(encoding: Encoding) -> Any:
    level = encoding.effective_level()
    if encoding.compression == "gzip":
        level = level if level is not None else DEFAULT_LEVEL["gzip"]
        isal = _isal_zlib()
        if isal is not None:
            return isal.compressobj(_ISAL_LEVEL[level], isal.DEFLATED, 31)
        return zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: the gzip wrapper (no time, no name)
    if encoding.compression == "zstd":
        import zstandard

        return zstandard.ZstdCompressor(level=level if level is not None else 3).compressobj()
    return None


class ObjectEncoder:
    """Turns records into an object body; call `encode` from a worker thread. Close at stop."""

    def __init__(self, encoding: Encoding, columns: dict[str, str]) -> None:
        self.encoding = encoding
        self.columns = columns
        self._pool: ThreadPoolExecutor | None = None  # the compression thread, started on first use
        self._pool_lock = threading.Lock()
        self._parquet: Callable[[Sequence[dict[str, Any]]], bytes] | None = None
        if encoding.format == "parquet":
            self._parquet = parquet_writer(columns, encoding.compression)

    def encode(self, records: Sequence[dict[str, Any]]) -> tuple[bytes, int]:
        """(object body, bytes before compression). Blocking."""
        if self._parquet is not None:
            body = self._parquet(records)
            return body, len(body)
        compressor = _compressor(self.encoding)
        if compressor is None:
            body = encode_json(list(records))
            return body, len(body)
        out: list[bytes] = []
        raw = 0
        pending: Future[bytes] | None = None
        try:
            for start in range(0, len(records), CHUNK_RECORDS):
                part = records[start : start + CHUNK_RECORDS]
                chunk = encode_json(part if isinstance(part, list) else list(part))
                raw += len(chunk)
                if pending is not None:
                    out.append(pending.result())
                pending = self._compress_pool().submit(compressor.compress, chunk)
        finally:
            if pending is not None:
                out.append(pending.result())  # never leave the compressor busy when we return or raise
        out.append(compressor.flush())
        return b"".join(out), raw

    def _compress_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-compress")
            return self._pool

    def close(self) -> None:
        """Stop the compression thread (a later `encode` starts it again)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


# -- Parquet --------------------------------------------------------------------------------------


def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def parquet_available() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def _arrow_type(athena_type: str) -> Any:
    import pyarrow as pa

    simple = {
        "string": pa.string(),
        "double": pa.float64(),
        "float": pa.float32(),
        "bigint": pa.int64(),
        "int": pa.int32(),
        "smallint": pa.int16(),
        "tinyint": pa.int8(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("ms"),
        "array<string>": pa.list_(pa.string()),
        "map<string,string>": pa.map_(pa.string(), pa.string()),
    }
    return simple[athena_type]


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return str(value)


def _as_number(value: Any, integral: bool) -> Any:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number or number in (float("inf"), float("-inf")):
        return None if integral else number
    return int(number) if integral else number


def _coerce(values: list[Any], athena_type: str) -> list[Any]:
    """The slow path for a column whose values do not all fit its type."""
    if athena_type == "string":
        return [_as_text(v) for v in values]
    if athena_type in ("double", "float"):
        return [_as_number(v, False) for v in values]
    if athena_type in ("bigint", "int", "smallint", "tinyint"):
        return [_as_number(v, True) for v in values]
    if athena_type == "boolean":
        return [v if isinstance(v, bool) else None for v in values]
    if athena_type == "array<string>":
        return [[_as_text(x) for x in v] if isinstance(v, list) else None for v in values]
    if athena_type == "map<string,string>":
        return [[(str(k), _as_text(x)) for k, x in v.items()] if isinstance(v, dict) else None for v in values]
    return [None] * len(values)


def _timestamps_ms(values: list[Any]) -> list[Any]:
    out = []
    for v in values:
        number = _as_number(v, False)
        out.append(None if number is None or number != number else int(number * 1000))
    return out


def parquet_writer(columns: dict[str, str], compression: Compression) -> Callable[[Sequence[dict[str, Any]]], bytes]:
    """A function writing records as one Parquet file of `columns` ({record field: Athena type})."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fields = [(name, column_name(name), athena_type, _arrow_type(athena_type)) for name, athena_type in columns.items()]
    schema = pa.schema([pa.field(col, arrow) for _, col, _, arrow in fields])
    codec = "none" if compression == "none" else compression

    def write(records: Sequence[dict[str, Any]]) -> bytes:
        arrays = []
        for field, _, athena_type, arrow in fields:
            values = [r.get(field) for r in records]
            if athena_type == "timestamp":
                values = _timestamps_ms(values)
            elif athena_type == "map<string,string>":
                values = _coerce(values, athena_type)
            try:
                arrays.append(pa.array(values, type=arrow))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
                arrays.append(pa.array(_coerce(values, athena_type), type=arrow))
        table = pa.Table.from_arrays(arrays, schema=schema)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression=codec)
        return sink.getvalue()

    return write


def column_name(field: str) -> str:
    """The Athena column for a record field: lower case, other characters than [a-z0-9_] as `_`."""
    name = re.sub(r"[^a-z0-9_]", "_", field.lower())
    return name if name and not name[0].isdigit() else f"_{name}"
