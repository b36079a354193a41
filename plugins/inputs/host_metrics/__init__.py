"""The `host_metrics` input; its options and examples are in README.md.

- `input`: `host_metrics` input: the node's CPU, memory, swap, disks, disk I/O, network, sockets and processes.
- `collect`: What `host_metrics` reads, with the CloudWatch agent's metric and dimension names.
"""
