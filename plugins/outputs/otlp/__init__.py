"""The `otlp` output: records to any OTLP endpoint over OTLP/HTTP (protobuf) or OTLP/gRPC.

- `output.py`: the config model and the plugin (`OtlpOutput`): encodes a batch, cuts it within the request
  limits, sends each request and turns the answer into the driver's outcome.
- `answers.py`: the OTLP spec's failure rules (HTTP status codes, gRPC status codes, RetryInfo, Retry-After,
  partial_success) as `SendResult`s.
- `transport.py`: OTLP/HTTP with aiohttp and OTLP/gRPC with grpc.aio (TLS, gzip, headers).
- `sigv4.py`: SigV4 signing of OTLP/HTTP requests for AWS's OTLP endpoints (botocore's signer).
- `limits.py`: request limits, each with its source and the date it was checked.
"""
