"""The `xray` input's parts: datagram parsing, the UDP receiver, the sampling proxy, address forms."""
