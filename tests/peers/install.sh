#!/bin/sh
# Installs the real peers the tests use that do not come from PyPI, when they are missing:
#   - @fluent-org/logger (npm, pinned by tests/peers/node/package-lock.json): Fluent forward client
#   - prometheus-node-exporter (Debian): a scrape target and the reference for host metrics
#   - prometheus (Debian): a real Prometheus server for the Prometheus round trip tests
# Tests that need a peer this script could not install skip and say which one.
set -eu
here=$(dirname "$0")

if command -v npm >/dev/null 2>&1; then
    if [ ! -d "$here/node/node_modules/@fluent-org/logger" ]; then
        (cd "$here/node" && npm ci --no-audit --no-fund --silent)
    fi
else
    echo "peers: npm not found; the Fluent forward client tests will be skipped" >&2
fi

if ! command -v prometheus-node-exporter >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus-node-exporter) >/dev/null 2>&1 \
            || echo "peers: could not install prometheus-node-exporter; its tests will be skipped" >&2
    else
        echo "peers: prometheus-node-exporter missing (install it as root: apt-get install prometheus-node-exporter)" >&2
    fi
fi

command -v prometheus >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null 2>&1; } || echo "peers: prometheus missing (apt-get install -y prometheus); the round trip tests through a real Prometheus will be skipped" >&2
