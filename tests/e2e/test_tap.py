"""`collector tap` against a running collector: generator -> add_fields -> blackhole."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request

from collector.testing import free_port, wait_for_sync
from tests.e2e.conftest import Collector, child_env, cli
from tests.installed import installed

PIPELINE = """
inputs:
  gen: {type: generator, message: "hello tap", rate: 4000, batch_size: 100}
processors:
  enrich: {type: add_fields, inputs: [gen], fields: {team: payments}}
outputs:
  hole: {type: file, inputs: [enrich], path: out/tap.jsonl}
"""


def tap(collector: Collector, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("tap", *args, "--api", f"127.0.0.1:{collector.port}", timeout=30)


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_tap_prints_what_a_component_emits_and_leaves_the_pipeline_alone(collector: Collector) -> None:
    collector.write_config(PIPELINE)
    collector.start()

    # The processor's records, as it passes them on: the generator's message plus its field.
    out = tap(collector, "enrich", "--limit", "5")
    assert out.returncode == 0, out.stderr
    records = lines(out.stdout)
    assert len(records) == 5
    for line in records:
        assert line["component"] == "enrich" and line["section"] == "processors" and line["kind"] == "logs"
        assert line["record"]["message"] == "hello tap" and line["record"]["team"] == "payments"
    # The input's, before the processor: no field yet. Text format: one line per record.
    out = tap(collector, "ge*", "--limit", "3", "--format", "text")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["gen logs: hello tap"] * 3
    # The output's: what it sends.
    sent = lines(tap(collector, "hole", "--limit", "2").stdout)
    assert [s["section"] for s in sent] == ["outputs", "outputs"] and sent[0]["record"]["team"] == "payments"

    # Two taps at once, both served.
    command = [installed().collector, "tap", "--api", f"127.0.0.1:{collector.port}", "--limit", "20"]
    procs = [
        subprocess.Popen([*command, name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(), text=True)
        for name in ("enrich", "gen")
    ]
    outs = [p.communicate(timeout=30) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert {line["component"] for line in lines(outs[0][0])} == {"enrich"} and len(lines(outs[0][0])) == 20
    assert {line["component"] for line in lines(outs[1][0])} == {"gen"} and len(lines(outs[1][0])) == 20

    # The rate limit holds: 60 records at 20/s (a burst of one second's worth, then 20 a second) take >= 2 s,
    # where the unlimited stream (4000/s) gives them in a few milliseconds.
    started = time.monotonic()
    out = tap(collector, "enrich", "--rate", "20", "--limit", "60")
    assert out.returncode == 0 and len(lines(out.stdout)) == 60
    assert time.monotonic() - started >= 1.9

    # An unknown name: a clear error, exit 2.
    out = tap(collector, "nope")
    assert out.returncode == 2
    assert "no component matches nope" in out.stderr and "enrich" in out.stderr

    # Every generated record delivered, once, in order, none dropped: the taps cost the pipeline nothing.
    for c in collector.status()["components"]:
        assert sum(c.get("dropped_events", {}).values()) == 0, c
    generated = collector.component("gen")["sent_events"]
    collector.signal(signal.SIGTERM)
    assert collector.wait() == 0
    assert "not delivered" not in collector.stderr()
    delivered = [
        json.loads(line) for line in (collector.workdir / "data" / "out" / "tap.jsonl").read_text().splitlines()
    ]
    assert len(delivered) >= generated > 0
    assert [r["sequence"] for r in delivered] == list(range(len(delivered)))
    assert all(r["team"] == "payments" for r in delivered)


def test_tap_ends_when_its_component_is_removed_and_on_shutdown(collector: Collector) -> None:
    collector.write_config(PIPELINE)
    collector.start()
    command = [installed().collector, "tap", "enrich", "--api", f"127.0.0.1:{collector.port}", "--rate", "1000"]
    # A closed stdout (`collector tap enrich | head -1`) ends it quietly, exit 0.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env()) as head:
        assert head.stdout is not None and head.stderr is not None
        assert json.loads(head.stdout.readline())["component"] == "enrich"
        head.stdout.close()
        assert head.wait(timeout=20) == 0 and head.stderr.read() == b""
    # So does Ctrl-C.
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env()) as interrupted:
        assert interrupted.stdout is not None and interrupted.stdout.readline()
        interrupted.send_signal(signal.SIGINT)
        assert interrupted.wait(timeout=20) == 0
    # No collector there: exit 1, saying so.
    out = cli("tap", "enrich", "--api", f"127.0.0.1:{free_port()}")
    assert out.returncode == 1 and "cannot reach the collector" in out.stderr

    url = f"http://127.0.0.1:{collector.port}/tap?component=enrich&rate=5"
    with urllib.request.urlopen(url, timeout=10) as stream:
        first = json.loads(stream.readline())
        assert first["component"] == "enrich"
        # A reload without the processor ends the tap, with a last line saying why.
        collector.config.write_text(
            collector.config.read_text()
            .replace("processors:\n", "")
            .replace("  enrich: {type: add_fields, inputs: [gen], fields: {team: payments}}\n", "")
            .replace("inputs: [enrich]", "inputs: [gen]")
        )
        collector.signal(signal.SIGHUP)
        rest = [json.loads(line) for line in stream]  # ends: the server closes the stream
    assert rest[-1]["tap"] == "end" and rest[-1]["reason"] == "component removed"
    assert all(line.get("component") == "enrich" for line in rest[:-1])
    wait_for_sync(lambda: collector.status()["reloads"]["success"] == 1)

    # A tap open at shutdown does not hold the collector up.
    with urllib.request.urlopen(f"http://127.0.0.1:{collector.port}/tap?component=gen&rate=5", timeout=10) as stream:
        stream.readline()
        started = time.monotonic()
        collector.signal(signal.SIGTERM)
        assert collector.wait() == 0
        assert time.monotonic() - started < 8
