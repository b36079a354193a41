"""Files tailed by `collector run` end up in S3 (the moto server) under the partitioned keys `athena-ddl` describes.

Between the collector and moto sits the fault proxy, which answers some
PutObject calls with S3's `SlowDown` (503) and others with a bare 503: they are
retried, nothing is lost, and the number of requests stays bounded. The
collector finds credentials only through the standard chain (the environment,
with dummy keys); instance metadata is disabled.
"""

from __future__ import annotations

import gzip
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from collector.testing import wait_for_sync
from tests.aws_faults import FaultProxy
from tests.e2e.conftest import Collector, cli
from tests.moto import MotoServer

pytestmark = pytest.mark.slow

BUCKET = "e2e-archive"
LINES_PER_FILE = 3000


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    moto.client("s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": moto.region})
    with FaultProxy(moto.endpoint_url) as p:
        yield p


def objects(moto: MotoServer) -> dict[str, list[dict[str, Any]]]:
    s3 = moto.client("s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            out[obj["Key"]] = [orjson.loads(line) for line in gzip.decompress(body).splitlines()]
    return out


def write_logs(directory: Path, first: int) -> list[str]:
    """Two files of LINES_PER_FILE lines each; returns every line written."""
    lines = []
    for name in ("app.log", "worker.log"):
        batch = [f"{name} line {first + i:06d} " + "z" * (i % 40) for i in range(LINES_PER_FILE)]
        with (directory / name).open("a") as f:
            f.write("".join(line + "\n" for line in batch))
        lines.extend(batch)
    return lines


def test_tailed_files_reach_s3_under_the_keys_athena_ddl_describes(
    collector: Collector, moto: MotoServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    collector.write_config(
        f"""
inputs:
  app: {{type: file, include: ["{logs}/*.log"], read_from: beginning}}
outputs:
  archive:
    type: s3
    inputs: [app]
    bucket: {BUCKET}
    region: {moto.region}
    endpoint_url: {proxy.url}
    batch: {{max_bytes: 64KiB, timeout: 1s}}
    retry: {{initial_backoff: 50ms, max_backoff: 200ms}}
"""
    )
    proxy.fail_next(3, "slowdown", match=lambda r: r.method == "PUT")
    proxy.fail_next(2, "5xx", match=lambda r: r.method == "PUT")
    collector.start()
    written = write_logs(logs, 0)
    wait_for_sync(lambda: sum(len(v) for v in objects(moto).values()) >= len(written), timeout=30)
    more = write_logs(logs, LINES_PER_FILE)  # the last object goes up at shutdown, before its timeout
    wait_for_sync(lambda: collector.metric("collector_component_received_events_total", component="archive") >= 12000)
    collector.signal(signal.SIGTERM)
    assert collector.wait(20) == 0, collector.stderr()

    stored = objects(moto)
    records = [r for recs in stored.values() for r in recs]
    assert sorted(r["message"] for r in records) == sorted(written + more)  # every line, none twice
    assert {Path(r["file"]).name for r in records} == {"app.log", "worker.log"}
    assert proxy.faults == 5
    put_calls = proxy.count(lambda r: r.method == "PUT")
    assert put_calls == len(stored) + 5  # each fault retried once; nothing else sent twice

    ddl = cli("athena-ddl", "archive", "-c", str(collector.config))
    assert ddl.returncode == 0, ddl.stderr
    assert (
        "PARTITIONED BY (\n  `year` string,\n  `month` string,\n  `day` string,\n  `hour` string,\n  `host` string\n)"
        in ddl.stdout
    )
    template = re.search(r"'storage.location.template' = '([^']+)'", ddl.stdout)
    assert template is not None
    # The keys written are the template's locations plus an object name: the table reads exactly them.
    location = template.group(1).removeprefix(f"s3://{BUCKET}/")
    pieces = re.split(r"\$\{(\w+)\}", location)  # literal, column, literal, column, ...
    pattern = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(pieces))
    pattern += r"[0-9a-f-]+\.json\.gz"
    for key, recs in stored.items():
        match = re.fullmatch(pattern, key)
        assert match is not None, f"{key} is not under {location}"
        parts = match.groupdict()
        assert parts["year"].isdigit() and len(parts["month"]) == len(parts["day"]) == len(parts["hour"]) == 2
        assert {r["host"] for r in recs} == {parts["host"]}  # the partition column stands for the records' host
        stamp = recs[0]["timestamp"]
        assert time.strftime("%Y/%m/%d/%H", time.gmtime(stamp)) == "/".join(
            parts[p] for p in ("year", "month", "day", "hour")
        )
