#!/usr/bin/env bash
# Time of one metrics scrape of a node running STREAMS streams (`input publish://`,
# idle: the scrape's cost is per stream, not per byte of media), over loopback with curl:
# the whole node-wide scrape (/flotilla/api/metrics) and Flussonic's streams scrape
# (/streamer/api/v3/streams?format=openmetrics). Prints the median and the worst of
# SCRAPES requests each, after one warm-up scrape.
#
#   scripts/bench-metrics.sh [STREAMS] [SCRAPES]     # defaults: 1000 streams, 21 scrapes
#
# FLOTILLA=PATH runs that binary instead of building `--release`.
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS="${1:-1000}"
SCRAPES="${2:-21}"
PORT=18700
WORK="$(mktemp -d)"
NODE_PID=""
cleanup() {
    [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${FLOTILLA:-}" ]; then
    cargo build --release --quiet --bin flotilla
    FLOTILLA=target/release/flotilla
fi
{
    echo "http 127.0.0.1:$PORT;"
    echo "loglevel error;"
    for i in $(seq 1 "$STREAMS"); do echo "stream bench/s$i { input publish://; }"; done
} > "$WORK/flotilla.conf"
"$FLOTILLA" run -c "$WORK/flotilla.conf" > "$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/flotilla/api/health" >/dev/null && break
    sleep 0.1
done

measure() {
    local path="$1"
    curl -s -o "$WORK/scrape.txt" "http://127.0.0.1:$PORT$path"
    for _ in $(seq 1 "$SCRAPES"); do
        curl -s -o "$WORK/scrape.txt" -w "%{time_total}\n" "http://127.0.0.1:$PORT$path"
    done | sort -n | awk -v path="$path" -v lines="$(wc -l < "$WORK/scrape.txt")" '
        { t[NR] = $1 * 1000 }
        END { printf "%-45s %6d lines  median %6.1f ms  worst %6.1f ms\n", path, lines, t[int((NR + 1) / 2)], t[NR] }'
}
echo "$STREAMS streams, $SCRAPES scrapes each:"
measure /flotilla/api/metrics
measure "/streamer/api/v3/streams?format=openmetrics"
