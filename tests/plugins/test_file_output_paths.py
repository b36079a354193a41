"""The `file` output with record fields in `path`: one file per value, confined to its directory whatever the
value, a cap on open files, a failing file that does not cost the others, and private permissions."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.api import ComponentContext
from collector.events import LOGS, METRICS, Batch, Metric
from collector.send_result import Outcome, RetryableError
from collector_plugins.common.key_escape import SAFE_CHARACTERS
from collector_plugins.outputs.file import FileConfig, FileOutput
from collector_plugins.outputs.file_paths import FilePaths

T0 = 1764151200.0  # 2025-11-26T10:00:00Z
HOSTILE = ["../../etc/passwd", "..", ".", "a/b", "/abs", "nul\x00", "tab\t", "nl\n", "%2F", "é", "x.jsonl.1"]


def make(ctx: ComponentContext, **options: Any) -> FileOutput:
    return FileOutput(FileConfig(type="file", inputs=["src"], **options), ctx)


def rec(i: int, **fields: Any) -> dict[str, Any]:
    return {"timestamp": T0, "message": f"m{i}", **fields}


def files_under(root: Path) -> dict[str, list[str]]:
    """Every regular file under `root` (relative path) -> its messages."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = [
                orjson.loads(line)["message"] for line in path.read_bytes().splitlines()
            ]
    return out


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0o000)
    try:
        yield
    finally:
        os.umask(old)


async def test_one_file_per_field_value_and_date(ctx: ComponentContext, tmp_path: Path) -> None:
    out = make(ctx, path="out/{app}/{%Y}-{%m}-{%d}.jsonl")
    assert out.path is None
    records = [rec(0, app="web"), rec(1, app="db"), rec(2, app="web"), {**rec(3, app="web"), "timestamp": T0 + 86400}]
    assert await out.send(Batch(LOGS, records)) is None
    await out.stop()
    assert files_under(tmp_path / "out") == {
        "db/2025-11-26.jsonl": ["m1"],
        "web/2025-11-26.jsonl": ["m0", "m2"],
        "web/2025-11-27.jsonl": ["m3"],
    }
    assert out.events == 4 and out.counters()["files_opened"] == 3


async def test_hostile_values_stay_in_their_directory_level(ctx: ComponentContext, tmp_path: Path) -> None:
    out = make(ctx, path="out/app={app}/log.jsonl")
    await out.send(Batch(LOGS, [rec(i, app=value) for i, value in enumerate(HOSTILE)]))
    await out.stop()
    written = files_under(tmp_path)
    assert written == {
        "out/app=..%2F..%2Fetc%2Fpasswd/log.jsonl": ["m0"],
        "out/app=%2E%2E/log.jsonl": ["m1"],
        "out/app=%2E/log.jsonl": ["m2"],
        "out/app=a%2Fb/log.jsonl": ["m3"],
        "out/app=%2Fabs/log.jsonl": ["m4"],
        "out/app=nul%00/log.jsonl": ["m5"],
        "out/app=tab%09/log.jsonl": ["m6"],
        "out/app=nl%0A/log.jsonl": ["m7"],
        "out/app=%252F/log.jsonl": ["m8"],
        "out/app=%C3%A9/log.jsonl": ["m9"],
        "out/app=x.jsonl.1/log.jsonl": ["m10"],
    }


async def test_a_value_cannot_name_another_files_rotated_copy(ctx: ComponentContext, tmp_path: Path) -> None:
    out = make(ctx, path="out/{app}.jsonl", max_bytes=1024, max_files=3)
    line = {"message": "x" * 500}
    for _ in range(2):  # x.jsonl rotates once: x.jsonl.1 exists
        await out.send(Batch(LOGS, [{**line, "app": "x"}]))
    await out.send(Batch(LOGS, [{"message": "intruder", "app": "x.jsonl.1"}]))
    await out.stop()
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["x.jsonl", "x.jsonl.1", "x.jsonl.1.jsonl"]
    assert b"intruder" not in (tmp_path / "out" / "x.jsonl.1").read_bytes()


values = st.one_of(st.text(), st.sampled_from(HOSTILE), st.text(alphabet="./%\x00\n~", max_size=8))


@settings(max_examples=300, deadline=None)
@given(values, values)
def test_any_value_renders_inside_the_base_directory_at_the_template_depth(a: str, b: str) -> None:
    base = Path("/data")
    paths = FilePaths("out/{a}/x-{b}-{a}.jsonl", {"host": "h"}, base)
    (rendered,) = paths.group([{"a": a, "b": b}])
    path = Path(rendered)
    assert os.path.normpath(rendered) == rendered  # no '.', '..' or empty levels to resolve
    relative = path.relative_to(base / "out")
    assert len(relative.parts) == 2
    assert set(relative.parts[0]) <= SAFE_CHARACTERS | {"%"}
    assert relative.parts[0] not in (".", "..")


async def test_open_files_are_capped_least_recently_written_closed_first(ctx: ComponentContext, tmp_path: Path) -> None:
    out = make(ctx, path="out/{n}.jsonl", max_open_files=3)
    for i in range(10):
        await out.send(Batch(LOGS, [rec(i, n=i % 5)]))
        assert out.counters()["open_files"] <= 3
    await out.stop()
    assert out.counters()["open_files"] == 0
    assert out.files_closed == out.files_opened - 3
    assert files_under(tmp_path / "out") == {f"{n}.jsonl": [f"m{n}", f"m{n + 5}"] for n in range(5)}


async def test_a_failing_file_costs_only_its_own_records(ctx: ComponentContext, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "blocked").write_bytes(b'{"message": "a file where a directory is needed"}\n')
    out = make(ctx, path="out/{app}/log.jsonl")
    records = [rec(0, app="ok"), rec(1, app="blocked"), rec(2, app="y" * 300), rec(3, app="ok")]
    result = await out.send(Batch(LOGS, records))
    await out.stop()
    assert result is not None and result.per_record == [Outcome.OK, Outcome.RETRY, Outcome.DROP, Outcome.OK]
    assert result.record_reasons is not None
    assert result.record_reasons[1].startswith("ENOTDIR") and result.record_reasons[2].startswith("ENAMETOOLONG")
    assert files_under(tmp_path / "out") == {
        "blocked": ["a file where a directory is needed"],
        "ok/log.jsonl": ["m0", "m3"],
    }
    assert out.events == 2


async def test_when_every_file_fails_the_batch_is_retried(ctx: ComponentContext, tmp_path: Path) -> None:
    (tmp_path / "out").write_bytes(b"not a directory\n")
    out = make(ctx, path="out/{app}/log.jsonl")
    with pytest.raises(RetryableError, match="ENOTDIR"):
        await out.send(Batch(LOGS, [rec(0, app="a"), rec(1, app="b")]))
    with pytest.raises(RetryableError):
        await out.write(Batch(LOGS, [rec(0, app="a")]))


async def test_metrics_render_their_name_and_tags(ctx: ComponentContext, tmp_path: Path) -> None:
    out = make(ctx, path="metrics/{name}/{tags.env}.jsonl")
    await out.send(Batch(METRICS, [Metric("cpu", "gauge", 1.0, {"env": "prod"}, T0)]))
    await out.stop()
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl")] == ["metrics/cpu/prod.jsonl"]


@pytest.mark.usefixtures("umask_zero")
@pytest.mark.parametrize("path", ["new/deeper/static.jsonl", "new/{app}/deeper/{%Y}.jsonl"])
async def test_created_files_are_0600_and_directories_0700_under_umask_0(
    ctx: ComponentContext, tmp_path: Path, path: str
) -> None:
    out = make(ctx, path=path, max_bytes=1024, max_files=2)
    for i in range(10):  # rotations create new files too
        await out.send(Batch(LOGS, [rec(i, app="a", pad="p" * 300)]))
    await out.stop()
    made = list((tmp_path / "new").rglob("*"))
    assert any(p.name.endswith(".1") for p in made), "rotated at least once"
    for p in made:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode == (0o700 if p.is_dir() else 0o600), (p, oct(mode))
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


@pytest.mark.usefixtures("umask_zero")
async def test_existing_files_and_directories_keep_their_mode(ctx: ComponentContext, tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir(mode=0o755)
    os.chmod(tmp_path / "shared", 0o755)
    (tmp_path / "shared" / "app.jsonl").write_bytes(b"")
    os.chmod(tmp_path / "shared" / "app.jsonl", 0o644)  # an operator opened it up for a log reader
    out = make(ctx, path="shared/app.jsonl")
    await out.write(Batch(LOGS, [rec(0)]))
    await out.stop()
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "shared" / "app.jsonl").stat().st_mode) == 0o644
