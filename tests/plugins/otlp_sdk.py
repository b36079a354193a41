"""Real OpenTelemetry SDK meters whose exports become ExportMetricsServiceRequests (the exporter's own encoder)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource

DELTA_ALL = {
    kind: AggregationTemporality.DELTA
    for kind in (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)
}


class Sdk:
    """A MeterProvider with an in-memory reader; `export()` is what the OTLP exporter would send now."""

    def __init__(
        self,
        delta: bool = False,
        resource: dict[str, Any] | None = None,
        exponential: Iterable[str] = (),
        max_size: int = 160,
    ) -> None:
        self.reader = InMemoryMetricReader(preferred_temporality=DELTA_ALL if delta else None)
        views = [
            View(instrument_name=name, aggregation=ExponentialBucketHistogramAggregation(max_size=max_size))
            for name in exponential
        ]
        self.provider = MeterProvider(
            metric_readers=[self.reader],
            resource=Resource.create(resource or {"service.name": "shop"}),
            views=views,
        )
        self.meter = self.provider.get_meter("test.meter", "1.2")

    def export(self) -> ExportMetricsServiceRequest:
        data = self.reader.get_metrics_data()
        request = encode_metrics(data) if data is not None else ExportMetricsServiceRequest()
        assert isinstance(request, ExportMetricsServiceRequest)
        return request

    def close(self) -> None:
        self.provider.shutdown()


class TraceSdk:
    """A TracerProvider with an in-memory exporter; `export()` is the request the OTLP exporter would send."""

    def __init__(self, resource: dict[str, Any] | None = None) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create(resource or {"service.name": "shop"}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("test.tracer", "2.0", attributes={"scope.attr": "s"})

    def export(self) -> Any:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        spans = self.exporter.get_finished_spans()
        self.exporter.clear()
        return encode_spans(spans)

    def close(self) -> None:
        self.provider.shutdown()


class LogSdk:
    """A LoggerProvider with an in-memory exporter; `export()` is the request the OTLP exporter would send."""

    def __init__(self, resource: dict[str, Any] | None = None) -> None:
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

        self.exporter = InMemoryLogRecordExporter()
        self.provider = LoggerProvider(resource=Resource.create(resource or {"service.name": "shop"}))
        self.provider.add_log_record_processor(SimpleLogRecordProcessor(self.exporter))
        self.logger = self.provider.get_logger("test.logger", "3.0")

    def export(self) -> Any:
        from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs

        logs = self.exporter.get_finished_logs()
        self.exporter.clear()
        return encode_logs(logs)

    def close(self) -> None:
        self.provider.shutdown()
