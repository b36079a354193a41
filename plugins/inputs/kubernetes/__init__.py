"""The `kubernetes` input; its options and examples are in README.md.

- `input`: `kubernetes`: the `file` input preset for the container logs the kubelet keeps under /var/log/pods.
"""
