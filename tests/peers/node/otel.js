// Sends traces, a log record and a counter with the real OpenTelemetry JS SDK and its OTLP exporters.
//
//   node otel.js '{"protocol": "grpc"|"http", "grpcPort": 4317, "httpPort": 4318}'
//
// Prints one JSON line: {"traces": code, "logs": code, "metrics": "ok"|error, "traceId": ..., "spans": {...}}
// (codes are the exporters' ExportResultCode: 0 = SUCCESS).
"use strict";
const api = require("@opentelemetry/api");
const {resourceFromAttributes} = require("@opentelemetry/resources");
const {BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor} = require("@opentelemetry/sdk-trace-base");
const {LoggerProvider, InMemoryLogRecordExporter, SimpleLogRecordProcessor} = require("@opentelemetry/sdk-logs");
const {MeterProvider, PeriodicExportingMetricReader, AggregationTemporality} = require("@opentelemetry/sdk-metrics");

const opts = JSON.parse(process.argv[2]);
const grpc = opts.protocol === "grpc";
const base = grpc ? `http://127.0.0.1:${opts.grpcPort}` : `http://127.0.0.1:${opts.httpPort}`;
const pkg = (signal) => `@opentelemetry/exporter-${signal}-otlp-${grpc ? "grpc" : "proto"}`;
const url = (path) => (grpc ? base : `${base}${path}`);
const resource = resourceFromAttributes({"service.name": "node-shop", "telemetry.sdk.language": "nodejs"});

function exportWith(exporter, items) {
  return new Promise((resolve) => exporter.export(items, (result) => resolve(result)));
}

async function main() {
  const out = {};
  // Traces: a server span with a client child, recorded in memory, then exported by the OTLP exporter.
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({resource, spanProcessors: [new SimpleSpanProcessor(spans)]});
  const tracer = tracerProvider.getTracer("node-test", "1.0.0");
  const server = tracer.startSpan("GET /cart", {kind: api.SpanKind.SERVER, attributes: {"http.method": "GET"}});
  const child = tracer.startSpan("db", {kind: api.SpanKind.CLIENT}, api.trace.setSpan(api.context.active(), server));
  child.end();
  server.end();
  const {OTLPTraceExporter} = require(pkg("trace"));
  const traceExporter = new OTLPTraceExporter({url: url("/v1/traces")});
  const finished = spans.getFinishedSpans();
  out.traces = (await exportWith(traceExporter, finished)).code;
  out.traceId = server.spanContext().traceId;
  out.spans = Object.fromEntries(finished.map((s) => [s.name, s.spanContext().spanId]));
  await traceExporter.shutdown();

  // Logs: one record inside the server span's context.
  const logs = new InMemoryLogRecordExporter();
  const loggerProvider = new LoggerProvider({resource, processors: [new SimpleLogRecordProcessor({exporter: logs})]});
  // No context manager is registered, so the span's context is passed explicitly.
  loggerProvider.getLogger("node-test").emit({
    body: "cart viewed",
    severityText: "INFO",
    attributes: {items: 2},
    context: api.trace.setSpan(api.ROOT_CONTEXT, server),
  });
  const {OTLPLogExporter} = require(pkg("logs"));
  const logExporter = new OTLPLogExporter({url: url("/v1/logs")});
  out.logs = (await exportWith(logExporter, logs.getFinishedLogRecords())).code;
  await logExporter.shutdown();

  // Metrics: a delta counter; forceFlush rejects when the export fails.
  const {OTLPMetricExporter} = require(pkg("metrics"));
  const metricExporter = new OTLPMetricExporter({
    url: url("/v1/metrics"),
    temporalityPreference: AggregationTemporality.DELTA,
  });
  const reader = new PeriodicExportingMetricReader({exporter: metricExporter, exportIntervalMillis: 3600000});
  const meterProvider = new MeterProvider({resource, readers: [reader]});
  meterProvider.getMeter("node-test").createCounter("carts").add(4, {region: "eu"});
  try {
    await meterProvider.forceFlush();
    out.metrics = "ok";
  } catch (err) {
    out.metrics = String(err);
  }
  await meterProvider.shutdown();
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => {
  process.stdout.write(JSON.stringify({error: String(err)}) + "\n");
  process.exit(1);
});
