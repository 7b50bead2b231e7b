#!/usr/bin/env bash
# Time of a config reload on a node running STREAMS streams (`input publish://`, idle)
# plus one live test stream that ffmpeg plays over HLS from before the first reload to
# after the last: each reload is `POST /flotilla/api/reload`, timed by curl from request
# to answer (the answer comes after every change is applied). Three kinds, ROUNDS each,
# alternating:
#   same     the file unchanged (read, check, compare, nothing to do)
#   swap     half the streams replaced by new names (STREAMS/2 stop, STREAMS/2 start)
#   back     the original file again (the same swap the other way)
# Prints the median and worst per kind, and whether the viewer played through without an
# error (ffmpeg's exit status and error output).
#
#   scripts/bench-reload.sh [STREAMS] [ROUNDS]       # defaults: 1000 streams, 5 rounds
#
# FLOTILLA=PATH runs that binary instead of building `--release`.
set -euo pipefail
cd "$(dirname "$0")/.."
STREAMS="${1:-1000}"
ROUNDS="${2:-5}"
PORT=18710
WORK="$(mktemp -d)"
NODE_PID=""
VIEWER_PID=""
cleanup() {
    [ -n "$VIEWER_PID" ] && kill "$VIEWER_PID" 2>/dev/null || true
    [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${FLOTILLA:-}" ]; then
    cargo build --release --quiet --bin flotilla
    FLOTILLA=target/release/flotilla
fi
# config FIRST_HALF_PREFIX: the live stream, then STREAMS idle ones (the second half
# always named bench/s…, the first half named PREFIX/s…).
config() {
    echo "http 127.0.0.1:$PORT;"
    echo "edit_auth admin secret;"
    echo "loglevel error;"
    echo "stream live { input test://; segment_duration 1; }"
    local half=$((STREAMS / 2))
    for i in $(seq 1 "$half"); do echo "stream $1/s$i { input publish://; }"; done
    for i in $(seq $((half + 1)) "$STREAMS"); do echo "stream bench/s$i { input publish://; }"; done
}
config bench > "$WORK/a.conf"
config other > "$WORK/b.conf"
cp "$WORK/a.conf" "$WORK/flotilla.conf"
"$FLOTILLA" run -c "$WORK/flotilla.conf" > "$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/live/index.m3u8" >/dev/null && break
    sleep 0.2
done
seconds=$((ROUNDS * 3 * 2 + 10))
ffmpeg -nostdin -v error -i "http://127.0.0.1:$PORT/live/index.m3u8" -t "$seconds" -f null - \
    2> "$WORK/viewer.err" &
VIEWER_PID=$!
sleep 3

reload() {
    curl -s -o "$WORK/answer.json" -w "%{http_code} %{time_total}\n" -u admin:secret \
        -X POST "http://127.0.0.1:$PORT/flotilla/api/reload"
}
: > "$WORK/times"
for _ in $(seq 1 "$ROUNDS"); do
    read -r code t < <(reload)
    echo "same $code $t" >> "$WORK/times"
    cp "$WORK/b.conf" "$WORK/flotilla.conf"
    read -r code t < <(reload)
    echo "swap $code $t" >> "$WORK/times"
    cp "$WORK/a.conf" "$WORK/flotilla.conf"
    read -r code t < <(reload)
    echo "back $code $t" >> "$WORK/times"
    sleep 1
done
if grep -qv " 200 " "$WORK/times"; then
    echo "a reload failed:" >&2
    grep -v " 200 " "$WORK/times" >&2
    cat "$WORK/answer.json" >&2
    exit 1
fi
echo "$STREAMS streams, $ROUNDS reloads of each kind (ms, curl's request to answer):"
for kind in same swap back; do
    grep "^$kind " "$WORK/times" | awk '{ print $3 * 1000 }' | sort -n | awk -v kind="$kind" '
        { t[NR] = $1 }
        END { printf "  %-5s median %7.1f ms  worst %7.1f ms\n", kind, t[int((NR + 1) / 2)], t[NR] }'
done
viewer_status=0
wait "$VIEWER_PID" || viewer_status=$?
VIEWER_PID=""
if [ "$viewer_status" = 0 ] && [ ! -s "$WORK/viewer.err" ]; then
    echo "viewer: played ${seconds} s through every reload without an error"
else
    echo "viewer: exit $viewer_status, errors:"
    cat "$WORK/viewer.err"
    exit 1
fi
