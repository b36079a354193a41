"""The `forward` input; its options and examples are in README.md.

- `input`: `forward` input: the Fluent forward protocol v1 over TCP (optionally TLS) and unix sockets.
- `protocol`: The Fluent forward protocol v1, server side: decoding event messages, the handshake, acks.
"""
