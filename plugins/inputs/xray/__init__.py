"""The `xray` input; its options and examples are in README.md.

- `input`: the plugin: the UDP segment receiver and the sampling proxy, run like the X-Ray daemon.
- `address`: `AWS_XRAY_DAEMON_ADDRESS` forms, parsed and resolved.
- `datagram`: one UDP datagram (header line + segment document) parsed and checked.
- `receiver`: the UDP receiver: datagrams to segment records, in bursts.
- `sampling_proxy`: the TCP side: the centralised-sampling proxy the X-Ray SDKs call, unsigned.
"""
