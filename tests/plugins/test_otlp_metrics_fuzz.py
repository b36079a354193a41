"""Hostile OTLP metrics: random and mutated requests never raise, bad points cost only themselves."""

from __future__ import annotations

import math
import time
from typing import Any

from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2 as pb

from collector.events import Metric
from collector_plugins.common.cloudwatch_metrics.datums import DatumBuilder, DatumOptions, InvalidRecord
from collector_plugins.common.metrics.distribution import as_distribution
from collector_plugins.common.otlp.metrics import OtlpMetricsConverter
from collector_plugins.outputs.prometheus_exporter.exposition import Exposition
from tests.plugins.otlp_sdk import Sdk

hostile_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 1e308, -1e-320, 5e-324])
floats = st.floats(-1e6, 1e6) | st.floats(-1e6, 1e6) | hostile_floats  # mostly plausible values
counts = st.integers(min_value=0, max_value=2**64 - 1) | st.integers(min_value=0, max_value=20)
times = st.integers(min_value=0, max_value=2**64 - 1) | st.integers(min_value=0, max_value=5)
temporality = st.sampled_from([1, 2, 1, 2, 0, 3])


@st.composite
def points(draw: Any, metric: pb.Metric) -> None:
    kinds = ["gauge", "sum", "histogram", "exponential_histogram", "summary"]
    kind = draw(st.sampled_from([*kinds, *kinds, "none"]))
    if kind == "none":
        return
    data = getattr(metric, kind)
    if kind in ("sum", "histogram", "exponential_histogram"):
        data.aggregation_temporality = draw(temporality)
    if kind == "sum":
        data.is_monotonic = draw(st.booleans())
    for _ in range(draw(st.integers(0, 4))):
        p = data.data_points.add()
        p.start_time_unix_nano = draw(times)
        p.time_unix_nano = draw(times)
        p.flags = draw(st.sampled_from([0, 0, 1, 7]))
        for key in draw(st.lists(st.sampled_from(["a", "b", "service.name", ""]), max_size=3)):
            kv = p.attributes.add()
            kv.key = key
            choice = draw(st.integers(0, 3))
            if choice == 0:
                kv.value.string_value = draw(st.text(max_size=5))
            elif choice == 1:
                kv.value.double_value = draw(floats)
            elif choice == 2:
                kv.value.array_value.values.add().bytes_value = b"\x00\xff"
        if kind in ("gauge", "sum"):
            if draw(st.booleans()):
                p.as_double = draw(floats)
            elif draw(st.booleans()):
                p.as_int = draw(st.integers(-(2**63), 2**63 - 1))
        elif kind == "histogram":
            bounds = draw(st.lists(floats, max_size=5))
            if draw(st.booleans()):  # well-formed bounds and one count per bucket, half of the time
                bounds = sorted({b for b in bounds if math.isfinite(b)})
                p.bucket_counts.extend(draw(st.lists(counts, min_size=len(bounds) + 1, max_size=len(bounds) + 1)))
            else:
                p.bucket_counts.extend(draw(st.lists(counts, max_size=7)))
            p.explicit_bounds.extend(bounds)
            p.count = draw(st.sampled_from([sum(p.bucket_counts) % 2**64, draw(counts)]))
            for field in ("sum", "min", "max"):
                if draw(st.booleans()):
                    setattr(p, field, draw(floats))
        elif kind == "exponential_histogram":
            p.scale = draw(st.integers(-12, 22))
            p.zero_threshold = draw(floats)
            p.zero_count = draw(counts)
            for side in (p.positive, p.negative):
                side.offset = draw(st.integers(-(2**31), 2**31 - 1) | st.integers(-3, 3))
                side.bucket_counts.extend(draw(st.lists(counts, max_size=6)))
            total = p.zero_count + sum(p.positive.bucket_counts) + sum(p.negative.bucket_counts)
            p.count = draw(st.sampled_from([total % 2**64, draw(counts)]))
            for field in ("sum", "min", "max"):
                if draw(st.booleans()):
                    setattr(p, field, draw(floats))
        else:
            p.count = draw(counts)
            p.sum = draw(floats)
            for _ in range(draw(st.integers(0, 3))):
                p.quantile_values.add(quantile=draw(floats), value=draw(floats))


@st.composite
def requests(draw: Any) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    for _ in range(draw(st.integers(1, 2))):
        rm = req.resource_metrics.add()
        if draw(st.booleans()):
            kv = rm.resource.attributes.add()
            kv.key, kv.value.string_value = "service.name", draw(st.text(max_size=4))
        sm = rm.scope_metrics.add()
        for _ in range(draw(st.integers(0, 4))):
            metric = sm.metrics.add()
            metric.name = draw(st.sampled_from(["m", "n", "x.y", "m", ""]))
            metric.unit = draw(st.sampled_from(["", "ms", "By", "{x}"]))
            draw(points(metric))
    return req


def check_records(records: list[Metric], exposition: Exposition) -> None:
    """What the outputs do with the records never raises anything but the rejection they are built for."""
    builder = DatumBuilder(DatumOptions(namespace="T"))
    for rec in records:
        if rec.type == "distribution":
            dist = as_distribution(rec.value, limit=None)
            assert dist.count >= 0
        try:
            builder.datums(rec, time.time())
        except InvalidRecord:
            pass  # e.g. timestamps out of CloudWatch's range: dead-lettered by the output, one record
    exposition.add(records, 0.0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(requests(), min_size=1, max_size=3))
def test_random_requests_never_raise(batch: list[ExportMetricsServiceRequest]) -> None:
    conv = OtlpMetricsConverter(max_series=5, max_buckets=8)
    exposition = Exposition(300.0)
    for req in batch:
        out = conv.convert(req, 1_700_000_000.0)
        assert out.rejected >= 0 and (out.rejected == 0) == (out.error_message == "")
        for rec in out.records:
            assert isinstance(rec.value, float | dict)
            if isinstance(rec.value, float):
                assert math.isfinite(rec.value)
        check_records(out.records, exposition)
    assert sum(conv.drain_losses().values()) >= 0


def sdk_request() -> bytes:
    sdk = Sdk(exponential=["exp"])
    try:
        sdk.meter.create_counter("c").add(3, {"k": "v"})
        sdk.meter.create_up_down_counter("u").add(-1)
        hist = sdk.meter.create_histogram("h")
        exp = sdk.meter.create_histogram("exp")
        for v in (0.0, 0.5, 3.0, 700.0):
            hist.record(v)
            exp.record(v)
        return sdk.export().SerializeToString()
    finally:
        sdk.close()


SDK_BYTES = sdk_request()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SDK_BYTES) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_mutated_sdk_requests_never_raise(flips: list[tuple[int, int]]) -> None:
    data = bytearray(SDK_BYTES)
    for index, byte in flips:
        data[index] = byte
    req = ExportMetricsServiceRequest()
    try:
        req.ParseFromString(bytes(data))
    except DecodeError:
        return  # the server answers such a body with an error before any conversion
    conv = OtlpMetricsConverter()
    for _ in range(2):  # twice: the second pass goes through the cumulative state
        out = conv.convert(req, 1_700_000_000.0)
        check_records(out.records, Exposition(300.0))
