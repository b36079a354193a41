"""X-Ray daemon replacement benchmark: UDP segments in, PutTraceSegments out, loss and latency measured.

    python -m bench.xray                                 # the three published points, full length
    python -m bench.xray sustained --duration 5          # one scenario, shortened
    python -m bench.xray capacity --rate 80000           # other rates

Scenarios (the issue's figures):

- `capacity`: 50,000 segments/s of 1 KiB documents into the `xray` input, batched into a `blackhole`
  output: what one core receives and batches (loss must be 0);
- `sustained`: 20,000 segments/s for 30 s through the `xray` output to a local fake of PutTraceSegments
  (loss must be 0; p99 from datagram to request below 1.5 s);
- `cpu`: 4,000 segments/s for 30 s through the `xray` output: the collector's CPU share (the daemon's
  published point is 38% of a t2.micro).

Each run starts a fresh `collector run` pinned to one CPU (`--cpu`), the fake X-Ray sink in its own process and
the sender in this one (pinned elsewhere when the machine has the cores). Every document carries its sequence
number and send time, so the sink measures delivery latency per document; loss is `sent - delivered`, and the
collector's loss ledger says where any went. Printed: one JSON line per run, then a summary table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

SCENARIOS: dict[str, dict[str, Any]] = {
    "capacity": {"rate": 50_000, "duration": 10.0, "sink": "blackhole"},
    "sustained": {"rate": 20_000, "duration": 30.0, "sink": "xray"},
    "cpu": {"rate": 4_000, "duration": 30.0, "sink": "xray"},
}
DOCUMENT_BYTES = 1024
HEADER = b'{"format":"json","version":1}\n'
_SEQ = re.compile(rb'\\?"seq\\?":(\d+),\\?"sent\\?":([0-9.]+)')


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


# --------------------------------------------------------------------------- the fake X-Ray sink


def serve_sink(port: int) -> None:
    """PutTraceSegments accepting everything; `GET /stats` reports documents and latency percentiles."""
    from aiohttp import web

    latencies: list[float] = []
    seen: set[int] = set()

    async def put(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        for seq, sent in _SEQ.findall(body):
            seen.add(int(seq))
            latencies.append(now - float(sent))
        return web.json_response({"UnprocessedTraceSegments": []})

    async def stats(request: web.Request) -> web.Response:
        ordered = sorted(latencies)

        def pct(p: float) -> float | None:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else None

        return web.json_response(
            {"documents": len(latencies), "unique": len(seen), "p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)}
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/TraceSegments", put)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --------------------------------------------------------------------------- the sender


def documents(count: int, start: int) -> list[bytes]:
    """Datagrams of exactly DOCUMENT_BYTES documents; `sent` is filled in at send time (fixed width)."""
    epoch = f"{int(time.time()):08x}"
    out = []
    for seq in range(start, start + count):
        head = (
            f'{{"trace_id":"1-{epoch}-{seq:024x}","id":"{seq:016x}","name":"bench","start_time":{time.time():.6f},'
            f'"end_time":{time.time():.6f},"annotations":{{"seq":{seq},"sent":SENT_TIME_PLACEHOLDER}},'
            '"metadata":{"default":{"pad":"'
        )
        pad = DOCUMENT_BYTES - len(head) - len('"}}}')
        out.append(HEADER + (head + "p" * pad + '"}}}').encode())
    return out


def send(port: int, rate: int, duration: float) -> int:
    """Send `rate` datagrams/s for `duration` s in 1 ms ticks; returns how many were sent."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 * 1024 * 1024)
    target = ("127.0.0.1", port)
    pool = documents(min(rate, 50_000), 0)
    placeholder = b"SENT_TIME_PLACEHOLDER"
    sent = 0
    start = time.perf_counter()
    end = start + duration
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        # At most 10 ms worth per tick: after the sender itself was descheduled it does not fire one huge
        # burst (which would overflow any receive buffer and measure the sender's hiccup, not the collector).
        due = min(int((now - start) * rate), sent + max(1, rate // 100))
        stamp = f"{time.time():.10f}".encode()  # 21 characters, the placeholder's width
        while sent < due:
            data = pool[sent % len(pool)].replace(placeholder, stamp)
            # The sequence number must be unique per document: rewrite it for documents past the pool.
            if sent >= len(pool):
                data = data.replace(b'"seq":%d,' % (sent % len(pool)), b'"seq":%d,' % sent)
            try:
                sock.sendto(data, target)
            except BlockingIOError:
                continue  # the sender's own buffer is full: retry (the collector is the one measured)
            sent += 1
        time.sleep(0.0005)
    sock.close()
    return sent


# --------------------------------------------------------------------------- one run


def config_text(data_dir: str, api_port: int, udp: int, sink: str, sink_port: int) -> str:
    if sink == "blackhole":
        output = "bench_out: {type: blackhole, inputs: [xray]}"
    else:
        output = (
            f"bench_out: {{type: xray, inputs: [xray], region: us-east-1, endpoint_url: http://127.0.0.1:{sink_port}, "
            "local_mode: true, buffer: {type: memory, max_bytes: 256MiB, max_events: 400000}}"
        )
    return f"""
data_dir: {data_dir}
api: {{listen: 127.0.0.1:{api_port}}}
log: {{level: warning}}
inputs:
  xray: {{type: xray, listen: "udp:127.0.0.1:{udp} tcp:127.0.0.1:{free_port()}", sampling_proxy: false,
          receive_buffer: 64MiB}}
outputs:
  {output}
"""


def component(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in status["components"] if c["name"] == name)


def run(scenario: str, rate: int, duration: float, sink: str, cpu: int) -> dict[str, Any]:
    import psutil

    cpus = sorted(os.sched_getaffinity(0))
    sender_cpus = {c for c in cpus if c != cpu} or {cpu}
    with tempfile.TemporaryDirectory(prefix="bench-xray-") as tmp:
        api_port, udp, sink_port = free_port(), free_port(socket.SOCK_DGRAM), free_port()
        config = Path(tmp) / "collector.yaml"
        config.write_text(config_text(tmp + "/data", api_port, udp, sink, sink_port))
        env = dict(
            os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_EC2_METADATA_DISABLED="true"
        )
        sink_proc = None
        if sink == "xray":
            sink_proc = subprocess.Popen(
                [sys.executable, "-m", "bench.xray", "--serve-sink", str(sink_port)],
                preexec_fn=lambda: os.sched_setaffinity(0, sender_cpus),
            )
        collector = subprocess.Popen(
            [sys.executable, "-m", "collector", "run", "-c", str(config)],
            env=env,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    ready = http_json(f"http://127.0.0.1:{api_port}/readyz")["ready"]
                    if ready and (sink_proc is None or http_json(f"http://127.0.0.1:{sink_port}/stats")):
                        break
                except OSError:
                    pass
                if collector.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"collector did not start:\n{collector.stderr.read().decode() if collector.stderr else ''}"
                    )
                time.sleep(0.1)
            os.sched_setaffinity(0, sender_cpus)
            proc = psutil.Process(collector.pid)
            cpu0, t0 = proc.cpu_times(), time.perf_counter()
            sent = send(udp, rate, duration)
            elapsed = time.perf_counter() - t0
            cpu1 = proc.cpu_times()

            def delivered() -> int:
                if sink_proc is not None:
                    return int(http_json(f"http://127.0.0.1:{sink_port}/stats")["unique"])
                return int(component(http_json(f"http://127.0.0.1:{api_port}/status"), "bench_out")["received_events"])

            settle = time.monotonic() + 15
            last, stable_since = -1, time.monotonic()
            while time.monotonic() < settle:
                now = delivered()
                if now >= sent:
                    break
                if now != last:
                    last, stable_since = now, time.monotonic()
                elif time.monotonic() - stable_since > 3:
                    break
                time.sleep(0.2)
            status = http_json(f"http://127.0.0.1:{api_port}/status")
            latency = http_json(f"http://127.0.0.1:{sink_port}/stats") if sink_proc is not None else {}
            received = component(status, "xray")
            busy = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            return {
                "scenario": scenario,
                "rate": rate,
                "duration_s": round(elapsed, 2),
                "sent": sent,
                "sent_per_s": round(sent / elapsed),
                "delivered": delivered(),
                "lost": sent - delivered(),
                "loss_ledger": received["dropped_events"],
                "collector_cpu_pct": round(100 * busy / elapsed, 1),
                "p50_s": latency.get("p50"),
                "p99_s": latency.get("p99"),
                "peak_rss_mib": round(proc.memory_info().rss / 2**20, 1),
            }
        finally:
            collector.send_signal(signal.SIGTERM)
            try:
                collector.wait(timeout=20)
            except subprocess.TimeoutExpired:
                collector.kill()
                collector.wait()
            if sink_proc is not None:
                sink_proc.terminate()
                sink_proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.xray", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], help="default: all three")
    parser.add_argument("--rate", type=int, help="segments per second (default: per scenario)")
    parser.add_argument("--duration", type=float, help="seconds of sending (default: per scenario)")
    parser.add_argument("--cpu", type=int, default=0, help="CPU the collector is pinned to (default: 0)")
    parser.add_argument("--serve-sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        serve_sink(args.serve_sink)
        return 0
    results = []
    for name in args.scenarios or list(SCENARIOS):
        preset = SCENARIOS[name]
        result = run(name, args.rate or preset["rate"], args.duration or preset["duration"], preset["sink"], args.cpu)
        print(json.dumps(result), flush=True)
        results.append(result)
    print(f"\n{'scenario':<10} {'sent/s':>8} {'lost':>6} {'cpu%':>6} {'p99 s':>7} {'rss MiB':>8}")
    for r in results:
        p99 = f"{r['p99_s']:.3f}" if r["p99_s"] is not None else "-"
        cpu, rss = r["collector_cpu_pct"], r["peak_rss_mib"]
        print(f"{r['scenario']:<10} {r['sent_per_s']:>8} {r['lost']:>6} {cpu:>6} {p99:>7} {rss:>8}")
    return 0 if all(r["lost"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
