"""OTLP metrics conversion on one core: data points converted per second by `OtlpMetricsConverter`.

    python -m bench.otlp_metrics                       # every mix, ~2 s each
    python -m bench.otlp_metrics --series 2000 --rounds 20 --mix cumulative

The requests are what the OpenTelemetry Python SDK's OTLP exporter sends (built with its MeterProvider and
encoded by its own encoder): `--series` series per instrument (counter, up-down counter, explicit histogram,
exponential histogram, observable gauge), two attributes each, a `service.name` resource. Each round is one
export, parsed from its bytes (as the server does) and converted; cumulative rounds after the first go
through the cumulative → delta state. Prints points/s over the parse + convert time only (the SDK's own
recording is not timed). Runs in this process, pinned to `--cpu` when the platform allows.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from collector_plugins.common.otlp.metrics import OtlpMetricsConverter
from tests.plugins.otlp_sdk import Sdk


def exports(delta: bool, series: int, rounds: int, seed: int) -> list[bytes]:
    """`rounds` serialised export requests of an SDK with `series` series per instrument."""
    rng = random.Random(seed)
    sdk = Sdk(delta=delta, exponential=["exp.duration"])
    try:
        meter = sdk.meter
        requests = meter.create_counter("http.requests")
        inflight = meter.create_up_down_counter("http.inflight")
        duration = meter.create_histogram("http.duration", unit="ms")
        exp = meter.create_histogram("exp.duration", unit="s")
        labels = [{"route": f"/r{i}", "code": str(200 + i % 5)} for i in range(series)]

        def observe(options: CallbackOptions) -> list[Observation]:
            return [Observation(rng.random() * 100, attrs) for attrs in labels]

        meter.create_observable_gauge("cpu.usage", [observe], unit="%")
        out = []
        for _ in range(rounds):
            for attrs in labels:
                requests.add(rng.randint(1, 10), attrs)
                inflight.add(rng.randint(-3, 3), attrs)
                for _ in range(5):
                    duration.record(rng.lognormvariate(3, 1), attrs)
                    exp.record(rng.lognormvariate(-3, 2), attrs)
            out.append(sdk.export().SerializeToString())
        return out
    finally:
        sdk.close()


def run(mix: str, series: int, rounds: int, seed: int) -> dict[str, Any]:
    bodies = exports(mix == "delta", series, rounds, seed)
    converter = OtlpMetricsConverter(max_series=10 * series * 6)
    points = records = 0
    started = time.process_time()
    for body in bodies:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        out = converter.convert(request, time.time())
        records += len(out.records)
        assert out.rejected == 0, out.error_message
    elapsed = time.process_time() - started
    points = converter.points
    return {
        "mix": mix,
        "points": points,
        "records": records,
        "cpu_seconds": round(elapsed, 3),
        "points_per_second": round(points / elapsed) if elapsed else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mix", choices=["delta", "cumulative", "all"], default="all")
    parser.add_argument("--series", type=int, default=500, help="series per instrument")
    parser.add_argument("--rounds", type=int, default=10, help="exports converted")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--cpu", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.cpu})
        except OSError:
            pass
    mixes = ["delta", "cumulative"] if args.mix == "all" else [args.mix]
    for mix in mixes:
        result = run(mix, args.series, args.rounds, args.seed)
        print(
            f"otlp_metrics {mix}: {result['points']} points in {result['cpu_seconds']} s CPU "
            f"-> {result['points_per_second']:,} points/s ({result['records']} records)"
        )


if __name__ == "__main__":
    main()
