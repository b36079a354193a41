#!/bin/sh
# The image's smoke step (see Containerfile): run `collector run` on CONFIG for a few seconds as the
# current user, require /readyz to answer 200 and the process to stay up, then stop it with SIGTERM
# and require exit status 0. tests/packaging/test_wheel.py runs this same script as uid 10001.
#   sh smoke.sh CONFIG            (SMOKE_SECONDS, default 5; COLLECTOR_API_LISTEN, default 127.0.0.1:8734)
set -u
config=${1:?usage: smoke.sh CONFIG}
seconds=${SMOKE_SECONDS:-5}
COLLECTOR_API_LISTEN=${COLLECTOR_API_LISTEN:-127.0.0.1:8734}
export COLLECTOR_API_LISTEN

# ProxyHandler({}) so that an HTTP(S)_PROXY in the build environment cannot capture 127.0.0.1.
ready() {
    python -c "import sys, urllib.request as u
try:
    ok = u.build_opener(u.ProxyHandler({})).open('http://$COLLECTOR_API_LISTEN/readyz', timeout=2).status == 200
except OSError:
    ok = False
sys.exit(0 if ok else 1)"
}

collector run -c "$config" &
pid=$!

waited=0
until ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid"
        echo "smoke: collector exited with status $? before it was ready" >&2
        exit 1
    fi
    waited=$((waited + 1))
    if [ "$waited" -gt 60 ]; then
        echo "smoke: not ready after 30 s" >&2
        kill -KILL "$pid"
        exit 1
    fi
    sleep 0.5
done
echo "smoke: ready"

sleep "$seconds"
if ! kill -0 "$pid" 2>/dev/null || ! ready; then
    echo "smoke: collector did not stay up and ready for ${seconds} s" >&2
    kill -KILL "$pid" 2>/dev/null
    exit 1
fi

kill -TERM "$pid"
wait "$pid"
status=$?
if [ "$status" -ne 0 ]; then
    echo "smoke: collector exited with status $status on SIGTERM" >&2
    exit 1
fi
echo "smoke: stopped cleanly"
