"""Request limits of the `otlp` output, each with its source and the date it was checked.

- OTLP itself sets no request size. The binding limit of an aggregator (our own otlp input, the OpenTelemetry
  Collector's receiver) is gRPC's default maximum received message size, 4 MiB (grpc-core
  `GRPC_DEFAULT_MAX_RECV_MESSAGE_LENGTH`, the Collector's `max_recv_msg_size_mib` default 4): the driver cuts
  requests to it (`MAX_REQUEST_BYTES`), and the output re-checks the exact encoded size before sending.
- AWS X-Ray's OTLP traces endpoint: 5 MB uncompressed per request, 10,000 spans per request, 200 KB per span
  (CloudWatch "OTLP Endpoints" page, table "trace endpoint").
- CloudWatch Logs' OTLP logs endpoint: the page's logs table could not be read in full when this was
  checked; the PutLogEvents limits it builds on are used (1,048,576 bytes and 10,000 events per request),
  the same values the `cloudwatch_logs` output declares. Lower `batch:` if AWS documents smaller ones.
"""

from __future__ import annotations

from collector.output_limits import Limit, OutputLimits

CHECKED = "2026-12-06"
GRPC_MAX_MESSAGE = "https://github.com/grpc/grpc/blob/master/include/grpc/impl/channel_arg_names.h"
CLOUDWATCH_OTLP = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-OTLPEndpoint.html"
PUT_LOG_EVENTS = "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html"

MAX_REQUEST_BYTES = Limit(4 * 1024 * 1024, GRPC_MAX_MESSAGE, CHECKED)

XRAY_MAX_REQUEST_BYTES = Limit(5_000_000, CLOUDWATCH_OTLP, CHECKED)
XRAY_MAX_SPANS = Limit(10_000, CLOUDWATCH_OTLP, CHECKED)
XRAY_MAX_SPAN_BYTES = Limit(200_000, CLOUDWATCH_OTLP, CHECKED)

LOGS_MAX_REQUEST_BYTES = Limit(1_048_576, PUT_LOG_EVENTS, CHECKED)
LOGS_MAX_EVENTS = Limit(10_000, PUT_LOG_EVENTS, CHECKED)

LIMITS = OutputLimits(max_bytes=MAX_REQUEST_BYTES)

# Per AWS service the output signs for: (max request bytes, max items per request, max item bytes or None).
AWS_LIMITS: dict[str, tuple[Limit, Limit, Limit | None]] = {
    "xray": (XRAY_MAX_REQUEST_BYTES, XRAY_MAX_SPANS, XRAY_MAX_SPAN_BYTES),
    "logs": (LOGS_MAX_REQUEST_BYTES, LOGS_MAX_EVENTS, None),
}
