"""`forward` output: the Fluent forward protocol v1 client, to an aggregator tier (our `forward` input,
Fluentd, Fluent Bit).

- `output.py`: the config model and `ForwardOutput` (records to PackedForward chunks, delivery on ack);
- `servers.py`: the servers, load balancing and failover, each connection's handshake and acks.

The protocol's shared parts (EventTime, the handshake's digests) are in `common/forward_protocol.py`.
"""
