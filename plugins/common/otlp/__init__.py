"""OpenTelemetry (OTLP) support shared by the otlp input, the otlp output and the X-Ray mapping.

The record shapes are fixed by the OTLP contract (docs/receivers.md, "otlp"): `values` converts OTLP values,
ids and times, `traces` and `logs` turn export requests into span and log records, `conversion` holds the
result shape every converter returns.
"""
