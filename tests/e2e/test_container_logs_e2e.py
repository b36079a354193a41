"""Container logs through the real daemon: kubelet-style CRI files -> parse_logfmt -> parse_timestamp -> file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from collector.testing import wait_for_sync
from tests.e2e.conftest import Collector, json_lines
from tests.plugins.container_runtimes import cri_lines

POD_UID = "0c5b1f9e-2a3d-4e6f-8a7b-9c0d1e2f3a4b"


def delivered(path: Path) -> list[dict[str, Any]]:
    return json_lines(path)


def test_pod_logs_are_joined_parsed_and_timed(collector: Collector) -> None:
    pods = collector.workdir / "pods"
    log = pods / f"shop_cart-5f7d_{POD_UID}" / "cart" / "2.log"
    log.parent.mkdir(parents=True)
    long_msg = "y" * 40000
    written = cri_lines(
        [
            ("stdout", f'ts=2026-11-26T10:00:00.250Z level=info msg="{long_msg}"\n'.encode()),
            ("stderr", b'ts=2026-11-26T10:00:01Z level=error msg="card declined" code=51\n'),
            ("stdout", b'not logfmt "at all\n'),
        ]
    )
    log.write_bytes(b"".join(line + b"\n" for line in written))
    out = collector.workdir / "out.jsonl"
    collector.write_config(
        f"""\
inputs:
  pods:
    type: kubernetes
    include: ["{pods}/*/*/*.log"]
    glob_interval: 100ms
processors:
  fields:
    type: parse_logfmt
    inputs: [pods]
  time:
    type: parse_timestamp
    inputs: [fields]
    field: ts
    formats: [rfc3339]
outputs:
  out:
    type: file
    inputs: [time]
    path: {out}
"""
    )
    collector.start()
    wait_for_sync(lambda: len(delivered(out)) == 3, timeout=15)
    records = {r["stream"] + (r.get("level") or "none"): r for r in delivered(out)}
    info, error, prose = records["stdoutinfo"], records["stderrerror"], records["stdoutnone"]
    k8s = {"namespace": "shop", "pod_name": "cart-5f7d", "pod_uid": POD_UID, "container_name": "cart"}
    for record in (info, error, prose):
        assert record["k8s"] == {**k8s, "restart_count": 2}
    assert info["msg"] == long_msg, "the 16 KiB parts were joined before parsing"
    assert info["timestamp"] == 1795687200.25 and error["timestamp"] == 1795687201.0
    assert error["code"] == "51" and "parse_error" not in error
    assert prose["message"] == 'not logfmt "at all' and prose["parse_error"].startswith("invalid logfmt")
    assert collector.component("fields")["extra"]["parse_errors"] == 1
