#!/usr/bin/env bash
# Event delivery latency to an http webhook that is up: how long after the fact (the
# event's `utc_ms`) each event reaches the receiver (a Python http.server on loopback
# that notes its arrival time). Two kinds:
#   play_opened    emitted on the request path: SESSIONS HLS requests, each its own token
#   stream_opened  read off shared state by the watcher: STREAMS streams added by a reload
# Prints the median, p99 and worst per kind.
#
#   scripts/bench-events.sh [SESSIONS] [STREAMS]     # defaults: 1000 sessions, 200 streams
#
# FLOTILLA=PATH runs that binary instead of building `--release`.
set -euo pipefail
cd "$(dirname "$0")/.."
SESSIONS="${1:-1000}"
STREAMS="${2:-200}"
PORT=18720
HOOK_PORT=18721
WORK="$(mktemp -d)"
NODE_PID=""
HOOK_PID=""
cleanup() {
    [ -n "$NODE_PID" ] && kill "$NODE_PID" 2>/dev/null || true
    [ -n "$HOOK_PID" ] && kill "$HOOK_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [ -z "${FLOTILLA:-}" ]; then
    cargo build --release --quiet --bin flotilla
    FLOTILLA=target/release/flotilla
fi
cat > "$WORK/hook.py" <<'EOF'
import http.server, json, sys, time
out = open(sys.argv[2], "a", buffering=1)
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        arrived = time.time() * 1000
        body = self.rfile.read(int(self.headers["content-length"]))
        for event in json.loads(body):
            out.write(f"{event['event']} {arrived - event['utc_ms']:.1f}\n")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
EOF
python3 "$WORK/hook.py" "$HOOK_PORT" "$WORK/latency" &
HOOK_PID=$!
# The receiver is up before the node starts (a refused first POST is retried 1 s later).
for _ in $(seq 1 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $HOOK_PORT), 1)" 2>/dev/null && break
    sleep 0.1
done
config() {
    echo "http 127.0.0.1:$PORT;"
    echo "edit_auth admin secret;"
    echo "loglevel error;"
    echo "event_sink hooks { url http://127.0.0.1:$HOOK_PORT/events; }"
    echo "stream clip { input test://; segment_duration 1; }"
    for i in $(seq 1 "$1"); do echo "stream added/s$i { input test://; }"; done
}
config 0 > "$WORK/flotilla.conf"
"$FLOTILLA" run -c "$WORK/flotilla.conf" > "$WORK/node.log" 2>&1 &
NODE_PID=$!
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$PORT/clip/index.m3u8" >/dev/null && break
    sleep 0.2
done
for i in $(seq 1 "$SESSIONS"); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/clip/index.m3u8?token=bench$i"
done
config "$STREAMS" > "$WORK/flotilla.conf"
curl -s -o /dev/null -u admin:secret -X POST "http://127.0.0.1:$PORT/flotilla/api/reload"
sleep 3
report() {
    grep "^$1 " "$WORK/latency" | awk '{ print $2 }' | sort -n | awk -v kind="$1" '
        { t[NR] = $1 }
        END {
            if (NR == 0) { printf "  %-14s no events\n", kind; exit }
            p99 = int(NR * 0.99); if (p99 < 1) p99 = 1
            printf "  %-14s %5d events  median %6.1f ms  p99 %6.1f ms  worst %6.1f ms\n",
                kind, NR, t[int((NR + 1) / 2)], t[p99], t[NR]
        }'
}
echo "event delivery to a webhook that is up (utc_ms to arrival):"
report play_opened
report stream_opened
