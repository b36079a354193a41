"""`otlp` input: OTLP/gRPC and OTLP/HTTP receivers for traces, metrics and logs.

- input.py: the config model and the input (lifecycle, counters).
- receiver.py: one export request: admission, conversion, hand-on with an ack token, the answer.
- grpc_server.py: the grpc.aio server (TraceService, MetricsService, LogsService Export).
- http_server.py: the aiohttp server (POST /v1/traces, /v1/metrics, /v1/logs).
- decoding.py: bodies to messages (gzip within bounds, protobuf, OTLP JSON) and answers to bodies.
"""
