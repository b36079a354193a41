"""The listening side the receiving inputs share (`socket`, `syslog`, `forward`, `emf`, `statsd`, `xray`).

- `addresses`: `SCHEME://WHERE` listening addresses: parsing, validation, binding and releasing sockets.
- `options`: the config options (`listen`, TLS, limits) declared once, as a mixin for an input's config model.
- `listeners`: one input's addresses, sockets, stream server and datagram readers, started and stopped together.
- `stream_server`: accepting stream connections (TCP, unix, TLS) within one memory bound.
- `datagram_reader`: reading a bound datagram socket (UDP, unixgram) in bursts.
- `kernel_drops`: what the kernel dropped from a datagram socket's receive buffer.
"""
