from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from collector.units import Duration, Size, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (0, 0),
        (1024, 1024),
        ("512", 512),
        ("64MiB", 64 * 2**20),
        ("1GiB", 2**30),
        ("1.5KiB", 1536),
        ("10KB", 10_000),
        ("5mb", 5_000_000),
        ("2 GiB", 2 * 2**30),
        ("100b", 100),
    ],
)
def test_sizes(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "MiB", "12 parsecs", "-5", -1, True, "1..2KiB", [1]])
def test_bad_sizes(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (5, 5.0),
        (0.25, 0.25),
        ("5", 5.0),
        ("5s", 5.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("1h0m5s", 3605.0),
    ],
)
def test_durations(text: object, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["", "soon", "5 parsecs", "s5", "-1s", -1, False, "1m 30x"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_in_a_model() -> None:
    class M(BaseModel):
        size: Size
        every: Duration

    m = M.model_validate({"size": "1MiB", "every": "1m"})
    assert (m.size, m.every) == (2**20, 60.0)
    with pytest.raises(ValidationError) as info:
        M.model_validate({"size": "lots", "every": "1m"})
    assert "invalid size 'lots'" in str(info.value)
    assert M.model_json_schema()["properties"]["size"]["anyOf"][0]["type"] == "integer"


def test_format_size() -> None:
    assert format_size(512) == "512B"
    assert format_size(1536) == "1.5KiB"
    assert format_size(3 * 2**20) == "3.0MiB"
