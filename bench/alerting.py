"""Alert rule evaluation on one core: the `alert` output with 20 rules of every type.

    python -m bench.alerting                       # 2,000,000 records, batches of 1000, CPU 0
    python -m bench.alerting --records 5000000 --batch 500 --cpu 1

Log records shaped like parsed access/application logs (level, status, host, service, path,
latency_ms, user_agent, message of ~120 bytes, 50 hosts, 20 user agents) go through
`AlertOutput.write` in batches, as the output driver hands them over; the output's evaluation
ticker runs as in `collector run`, and state is saved to a temporary data directory. The 20 rules:
4 frequency (2 with query_key), 3 threshold (count, avg, max per host), 3 spike, 2 flatline,
2 new_term, 2 any, 2 blacklist, 2 whitelist, with filters of the filter processor's operators.
Prints records/s, MiB/s of messages, CPU seconds, peak RSS and the notifications produced.
Target: >= 300,000 records/s with 20 rules on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

RULES: list[dict[str, Any]] = [
    {
        "name": "errors",
        "type": "frequency",
        "num_events": 500,
        "timeframe": "1m",
        "filter": [{"field": "level", "equals": "error"}],
    },
    {
        "name": "errors_per_host",
        "type": "frequency",
        "num_events": 100,
        "timeframe": "1m",
        "query_key": "host",
        "filter": [{"field": "level", "equals": "error"}],
    },
    {
        "name": "5xx_per_service",
        "type": "frequency",
        "num_events": 1000,
        "timeframe": "5m",
        "query_key": "service",
        "filter": [{"field": "status", "gte": 500}],
    },
    {
        "name": "timeouts",
        "type": "frequency",
        "num_events": 50,
        "timeframe": "1m",
        "filter": [{"field": "message", "contains": "timeout"}],
    },
    {"name": "requests", "type": "threshold", "comparison": "gt", "threshold": 1e9, "period": "1m"},
    {
        "name": "latency_avg",
        "type": "threshold",
        "field": "latency_ms",
        "statistic": "avg",
        "comparison": "gt",
        "threshold": 250,
        "period": "1m",
        "evaluation_periods": 3,
        "datapoints_to_alarm": 2,
        "filter": [{"field": "path", "equals": "/api/orders"}],
    },
    {
        "name": "latency_max_host",
        "type": "threshold",
        "field": "latency_ms",
        "statistic": "max",
        "comparison": "gt",
        "threshold": 5000,
        "period": "1m",
        "query_key": "host",
        "filter": [{"field": "service", "equals": "checkout"}],
    },
    {
        "name": "error_spike",
        "type": "spike",
        "timeframe": "5m",
        "spike_height": 3,
        "spike_type": "up",
        "threshold_cur": 100,
        "filter": [{"field": "level", "equals": "error"}],
    },
    {"name": "traffic_drop", "type": "spike", "timeframe": "5m", "spike_height": 4, "spike_type": "down"},
    {
        "name": "login_spike",
        "type": "spike",
        "timeframe": "1m",
        "spike_height": 5,
        "filter": [{"field": "path", "equals": "/login"}],
    },
    {
        "name": "checkout_silent",
        "type": "flatline",
        "threshold": 1,
        "timeframe": "1m",
        "filter": [{"field": "service", "equals": "checkout"}],
    },
    {"name": "host_silent", "type": "flatline", "threshold": 1, "timeframe": "5m", "query_key": "host"},
    {"name": "new_agent", "type": "new_term", "field": "user_agent", "learn_for": "0s", "notify_resolved": False},
    {"name": "new_path", "type": "new_term", "field": "path", "learn_for": "0s", "notify_resolved": False},
    {"name": "panics", "type": "any", "filter": [{"field": "message", "matches": "panic|segfault"}]},
    {"name": "fatal", "type": "any", "filter": [{"field": "level", "in": ["fatal", "emerg"]}]},
    {"name": "root_login", "type": "blacklist", "compare_key": "user", "blacklist": ["root", "admin"]},
    {"name": "bad_status", "type": "blacklist", "compare_key": "status_text", "blacklist": ["teapot"]},
    {
        "name": "known_services",
        "type": "whitelist",
        "compare_key": "service",
        "whitelist": ["checkout", "cart", "search", "auth", "catalog"],
    },
    {
        "name": "known_regions",
        "type": "whitelist",
        "compare_key": "region",
        "whitelist": ["eu-west-1", "us-east-1"],
        "ignore_null": True,
    },
]

SERVICES = ["checkout", "cart", "search", "auth", "catalog"]
PATHS = ["/api/orders", "/api/cart", "/login", "/search", "/catalog/items", "/health"]
AGENTS = [f"agent/{i}.0" for i in range(20)]


def records(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        level = rnd.choices(["info", "warn", "error"], [90, 8, 2])[0]
        status = rnd.choices([200, 404, 503], [95, 4, 1])[0]
        out.append(
            {
                "timestamp": 0.0,
                "message": f"{level} request {i} handled by worker {rnd.randrange(64)} in {rnd.randrange(900)} ms "
                + ("timeout talking to db" if rnd.random() < 0.001 else "ok, nothing to report here at all"),
                "level": level,
                "status": status,
                "host": f"ip-10-0-0-{rnd.randrange(50)}",
                "service": SERVICES[rnd.randrange(5)],
                "path": PATHS[rnd.randrange(6)],
                "latency_ms": rnd.randrange(1, 900),
                "user_agent": AGENTS[rnd.randrange(20)],
                "user": "alice",
                "region": "eu-west-1",
            }
        )
    return out


async def run(total: int, batch_size: int, data_dir: Path) -> dict[str, Any]:
    from collector.events import LOGS, Batch
    from collector.testing import component_context
    from collector_plugins.outputs.alert.output import AlertConfig, AlertOutput

    config = AlertConfig.model_validate({"type": "alert", "inputs": ["app"], "rules": RULES})
    output = AlertOutput(config, component_context("alerts", data_dir))
    await output.start()
    pool = records(20 * batch_size)
    batches = [pool[i : i + batch_size] for i in range(0, len(pool), batch_size)]
    message_bytes = sum(len(r["message"]) for r in pool) / len(pool)
    done = 0
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    i = 0
    while done < total:
        batch = batches[i % len(batches)]
        i += 1
        await output.write(Batch(LOGS, batch, len(batch) * 120))
        done += len(batch)
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the evaluation ticker run, as between driver batches
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    await output.stop()
    counters = output.counters()
    return {
        "records": done,
        "rules": len(RULES),
        "seconds": seconds,
        "records_per_s": done / seconds,
        "mib_per_s": done * message_bytes / seconds / 2**20,
        "cpu_seconds": cpu,
        "records_per_cpu_s": done / cpu,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "notifications": counters["notifications"],
        "records_matched": counters["records_matched"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alerting", description=__doc__)
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (-1: no pinning)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    with tempfile.TemporaryDirectory(prefix="bench-alerting-") as tmp:
        result = runner(run(args.records, args.batch, Path(tmp)))
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"alert output, {result['rules']} rules: {result['records']:,} records in {result['seconds']:.2f} s = "
            f"{result['records_per_s']:,.0f} records/s, {result['mib_per_s']:.1f} MiB/s of messages, "
            f"CPU {result['cpu_seconds']:.2f} s ({result['records_per_cpu_s']:,.0f} records per CPU second), "
            f"peak RSS {result['peak_rss_mib']:.0f} MiB, "
            f"{result['notifications']} notifications, {result['records_matched']:,} rule matches"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
