"""Defaults shared by the code, the packaging files and the docs.

Packaging tests read these values, so a port or path changed here and not in
`packaging/` fails the suite instead of shipping an inconsistent unit file.
"""

from __future__ import annotations

# Self-observability API. 8734 avoids Fluent Bit (2020), Vector (8686),
# the OpenTelemetry Collector (8888, 13133), X-Ray (2000), StatsD (8125),
# EMF (25888), Prometheus (9090) and node-exporter (9100).
API_HOST = "127.0.0.1"
API_PORT = 8734
API_LISTEN = f"{API_HOST}:{API_PORT}"

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
STATUS_PATH = "/status"
TAP_PATH = "/tap"

# Where a packaged install keeps its state and its configuration.
DATA_DIR = "/var/lib/collector"
CONFIG_PATH = "/etc/collector/collector.yaml"
SERVICE_USER = "collector"
SERVICE_UID = 10001

# How long SIGTERM may take to drain in-flight data before the rest is cancelled.
SHUTDOWN_GRACE_SECONDS = 30.0
# The stop ends within shutdown_grace plus this: the time to cancel what is still running at the
# deadline, close the buffers (a disk buffer syncs) and stop the API.
SHUTDOWN_SLACK_SECONDS = 2.0

# Entry-point group through which installed distributions add plugins.
PLUGIN_ENTRY_POINT_GROUP = "node_collector.plugins"

# Entry-point group through which installed distributions add `collector` subcommands (collector/commands.py).
COMMAND_ENTRY_POINT_GROUP = "node_collector.commands"
