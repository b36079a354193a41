#!/bin/sh
# Installs the real peers the tests use that do not come from PyPI, when they are missing:
#   - @fluent-org/logger (npm, pinned by tests/peers/node/package-lock.json): Fluent forward client
#   - the OpenTelemetry JS SDK and its OTLP exporters (npm, same lock file): clients of the otlp input
#   - prometheus-node-exporter (Debian): a scrape target and the reference for host metrics
#   - prometheus (Debian): a real server scraping the source and our exporter (tests/integration/test_prometheus_round_trip.py)
#   - rsyslog (Debian) and syslog-ng (unpacked): syslog relays forwarding to the syslog input (tests/plugins/test_syslog_clients.py)
# Tests that need a peer this script could not install skip and say which one.
set -eu
here=$(dirname "$0")

if command -v npm >/dev/null 2>&1; then
    if [ ! -d "$here/node/node_modules/@fluent-org/logger" ] || [ ! -d "$here/node/node_modules/@opentelemetry/sdk-trace-base" ]; then
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

if ! command -v prometheus >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus) >/dev/null 2>&1 \
            || echo "peers: could not install prometheus; the round trip through a real Prometheus will be skipped" >&2
    else
        echo "peers: prometheus missing (install it as root: apt-get install prometheus)" >&2
    fi
fi

if ! command -v rsyslogd >/dev/null 2>&1 && [ ! -x /usr/sbin/rsyslogd ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rsyslog) >/dev/null 2>&1 \
            || echo "peers: could not install rsyslog; the rsyslog relay tests will be skipped" >&2
    else
        echo "peers: rsyslogd missing (install it as root: apt-get install rsyslog)" >&2
    fi
fi

# syslog-ng conflicts with rsyslog as a Debian package: it is unpacked (not installed) into a cache directory, its
# libraries installed with apt. tests/plugins/test_syslog_clients.py looks for it there (or $SYSLOG_NG, or PATH).
ng_dir="${XDG_CACHE_HOME:-$HOME/.cache}/collector-peers/syslog-ng"
if ! command -v syslog-ng >/dev/null 2>&1 && [ ! -x "$ng_dir/usr/sbin/syslog-ng" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (
            set -e
            tmp=$(mktemp -d)
            cd "$tmp"
            apt-get download syslog-ng-core
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libivykis0 libnet1 libjson-c5 libwrap0 libpcre3 \
                libglib2.0-0 libcap2
            mkdir -p "$ng_dir"
            dpkg -x syslog-ng-core_*.deb "$ng_dir"
            rm -rf "$tmp"
        ) >/dev/null 2>&1 || echo "peers: could not unpack syslog-ng; its relay tests will be skipped" >&2
    else
        echo "peers: syslog-ng missing (as root, tests/peers/install.sh unpacks it into $ng_dir)" >&2
    fi
fi
