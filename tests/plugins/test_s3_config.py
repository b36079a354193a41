"""s3 output options: defaults that make one request one object, and clear errors for what cannot work."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from collector.output_driver import effective_limits
from collector_plugins.outputs.s3 import S3Config, S3Output
from collector_plugins.outputs.s3_limits import MIB
from collector_plugins.outputs.s3_upload import part_ranges


def config(**body: Any) -> S3Config:
    return S3Config.model_validate({"type": "s3", "inputs": ["app"], "bucket": "logs-bucket", **body})


def test_defaults_roll_objects_by_size_and_age_from_a_disk_buffer() -> None:
    c = config()
    assert c.buffer.type == "disk"
    limits = effective_limits(S3Output, c)
    assert (limits.max_bytes, limits.timeout) == (16 * MIB, 300.0)
    assert limits.max_events >= 10**9 and not limits.exact_sizes  # bytes decide; no per-record sizing
    bigger = effective_limits(S3Output, config(batch={"max_bytes": "128MiB", "timeout": "15m"}))
    assert (bigger.max_bytes, bigger.timeout) == (128 * MIB, 900.0)  # no API limit: users may raise it


def test_a_memory_buffer_defaults_requests_to_half_of_it() -> None:
    c = config(buffer={"type": "memory", "max_bytes": "8MiB", "max_events": 1000})
    limits = effective_limits(S3Output, c)
    assert (limits.max_bytes, limits.max_events) == (4 * MIB, 500)
    with pytest.raises(ValidationError, match=r"at most half of buffer\.max_bytes"):
        config(buffer={"type": "memory", "max_bytes": "8MiB"}, batch={"max_bytes": "6MiB"})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"bucket": "Not_A_Bucket"}, "not a bucket name"),
        ({"prefix": "/logs/"}, "must not start with '/'"),
        ({"prefix": "logs/{unclosed/"}, "never closed"),
        ({"compression": "snappy"}, "snappy is for format: parquet"),
        ({"compression": "none", "compression_level": 3}, "applies to gzip and zstd"),
        ({"compression_level": 12}, "gzip is 1 to 9"),
        ({"part_size": "4MiB"}, "part_size must be 5MiB to 5GiB"),
        ({"multipart_threshold": "1MiB"}, "at least 5MiB"),
        ({"kms_key_id": "alias/x"}, "needs server_side_encryption"),
        ({"batch": {"max_bytes": "2GiB"}}, "at most 1024MiB"),
        ({"columns": {"a": "no such type!"}}, "not an Athena column type"),
        ({"columns": {"A": "string", "a": "string"}}, "same column name: a"),
        ({"format": "parquet", "columns": {"tags": "struct<a:string>"}}, "parquet cannot write"),
        ({"athena": {"table": "Bad-Name"}}, "should match pattern"),
    ],
)
def test_invalid_options_are_refused_with_the_reason(body: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(**body)


def test_parts_are_at_least_five_mib_and_never_more_than_ten_thousand() -> None:
    assert part_ranges(5 * MIB, 5 * MIB) == [(0, 5 * MIB)]
    assert part_ranges(5 * MIB + 1, 5 * MIB) == [(0, 5 * MIB), (5 * MIB, 5 * MIB + 1)]
    assert part_ranges(11 * MIB, 8 * MIB) == [(0, 8 * MIB), (8 * MIB, 11 * MIB)]
    huge = 10_000 * 5 * MIB + 1  # one byte more than 10,000 parts of 5 MiB hold
    ranges = part_ranges(huge, 5 * MIB)
    assert len(ranges) <= 10_000 and ranges[-1][1] == huge
    assert all(end - start >= 5 * MIB for start, end in ranges[:-1])
