#!/usr/bin/env bash
# Media between nodes: what a relayed stream costs the mesh, how late a relaying node is,
# what its viewers cost it, and its memory per relayed stream.
#
#   scripts/bench-relay.sh [VIEWERS] [STREAMS]      # defaults: 5000 viewers, 20 streams
#
# Two nodes on loopback: an origin (127.0.0.1) running STREAMS test streams
# (test://, ~480 kbit/s, 2 s segments) and an edge (127.0.0.2) with `cluster_play relay`
# that declares none of them. Measures:
# 1. the edge's RSS with STREAMS relayed streams against none, on a fresh edge;
# 2. mesh bytes per relayed stream: loopback bytes while the edge relays one stream and
#    nothing else moves (no viewer), less a baseline without the relay, against the
#    stream's own bytes (frame payloads) over the same time;
# 3. the delay of the edge's HLS behind the origin's: when each new segment first shows
#    in each node's playlist (both polled every 20 ms);
# 4. VIEWERS HLS viewers (flotilla bench) on the edge's relayed stream, then on the
#    origin's own stream: the node's CPU and RSS each time (one core = 100 %).
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS="${1:-5000}"
STREAMS="${2:-20}"
PORT=18580
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --profile lto --quiet --bin flotilla
BIN=target/lto/flotilla

cat > "$WORK/shared.conf" <<CONF
cluster_key bench-relay-cluster-key-0123456789abcdef;
loglevel error;
cluster_play relay;
peer 127.0.0.1:$PORT { fetch_timeout 1000; stale_timeout 3000; }
peer 127.0.0.2:$PORT { fetch_timeout 1000; stale_timeout 3000; }
CONF
start() {
    local index="$1" extra="$2"
    mkdir -p "$WORK/n$index/flotilla.conf.d"
    cp "$WORK/shared.conf" "$WORK/n$index/flotilla.conf"
    printf 'http 127.0.0.%s:%s;\n%b' "$index" "$PORT" "$extra" \
        > "$WORK/n$index/flotilla.conf.d/local.conf"
    $BIN run -c "$WORK/n$index/flotilla.conf" --hostname "n$index" >"$WORK/n$index.log" 2>&1 &
    PIDS+=($!)
}
origin_streams="stream test { input test://; segment_duration 2; segment_count 4; }\n"
for i in $(seq 2 "$STREAMS"); do
    origin_streams+="stream tv$i { input test://; segment_duration 2; segment_count 4; }\n"
done
start 1 "$origin_streams"
ORIGIN_PID=${PIDS[0]}
start 2 ""
EDGE_PID=${PIDS[1]}
ORIGIN="http://127.0.0.1:$PORT"
EDGE="http://127.0.0.2:$PORT"

stat_of() { # URL STREAM FIELD
    curl -s "$1/streamer/api/v3/streams" | python3 -c "
import json, sys
for s in json.load(sys.stdin)['streams']:
    if s['name'] == '$2':
        print(s['stats'].get('$3') or 0)
        break
else:
    print(0)"
}
lo_bytes() { awk '/^ *lo:/ {print $2}' /proc/net/dev; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# The edge learns the origin's streams from the mesh (fetch_timeout 1 s); the streams
# start and cut their first segments.
sleep 8
echo "== 1. memory per relayed stream (a fresh edge)"
rss0=$(rss_kib "$EDGE_PID")
CURLS=()
for i in $(seq 2 "$STREAMS"); do
    curl -s -o /dev/null "$EDGE/tv$i/tracks-v1a1/mono.m3u8" &
    CURLS+=($!)
done
curl -s -o /dev/null "$EDGE/test/tracks-v1a1/mono.m3u8"
wait "${CURLS[@]}"
sleep 10
rss1=$(rss_kib "$EDGE_PID")
relayed=$(curl -s "$EDGE/streamer/api/v3/streams" | python3 -c "import json,sys; print(sum(1 for s in json.load(sys.stdin)['streams'] if s['stats']['relayed']))")
echo "   edge RSS: $rss0 KiB with no relay, $rss1 KiB with $relayed relayed streams: $(( (rss1 - rss0) / relayed )) KiB per relayed stream"
# The relays stop (clients_timeout, 30 s after the last request).
sleep 40

for _ in $(seq 1 100); do
    curl -sf "$EDGE/test/tracks-v1a1/mono.m3u8" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -sf "$EDGE/test/tracks-v1a1/mono.m3u8" >/dev/null || { echo "the edge never relayed"; cat "$WORK"/n2.log; exit 1; }
echo "== 2. mesh bytes per relayed stream"
# The relay runs while asked for: a playlist request every 5 s (~0.1 kB/s) keeps it up.
keep_up() { while true; do curl -s -o /dev/null "$EDGE/test/tracks-v1a1/mono.m3u8"; sleep 5; done; }
keep_up & KEEPER=$!
sleep 4
lo0=$(lo_bytes); in0=$(stat_of "$ORIGIN" test bytes_in); out0=$(stat_of "$ORIGIN" test relay_bytes_out)
sleep 30
lo1=$(lo_bytes); in1=$(stat_of "$ORIGIN" test bytes_in); out1=$(stat_of "$ORIGIN" test relay_bytes_out)
kill "$KEEPER"
# Baseline: 30 s once the relay has stopped (clients_timeout, 30 s after the last
# request, plus margin): mesh exchanges only.
sleep 40
b0=$(lo_bytes); sleep 30; b1=$(lo_bytes)
python3 - "$lo0" "$lo1" "$in0" "$in1" "$b0" "$b1" "$out0" "$out1" <<'PY'
import sys
lo0, lo1, in0, in1, b0, b1, out0, out1 = map(int, sys.argv[1:])
on_wire = (lo1 - lo0) - (b1 - b0)
frames = out1 - out0
stream = in1 - in0
print(f"   the stream: {stream/30*8/1000:.0f} kbit/s of frame payloads")
print(f"   relay frames (media and framing): {frames/30*8/1000:.0f} kbit/s = {100*frames/stream:.1f} % of the stream's bytes")
print(f"   on the wire (QUIC, UDP and IP headers, ACKs; loopback less a {(b1-b0)/30/1000:.1f} kB/s baseline): {on_wire/30*8/1000:.0f} kbit/s = {100*on_wire/stream:.1f} %")
PY

echo "== 3. delay of the edge's HLS behind the origin's"
python3 - "$ORIGIN" "$EDGE" <<'PY'
import sys, time, urllib.request
origin, edge = sys.argv[1:]
def names(base):
    try:
        body = urllib.request.urlopen(base + "/test/tracks-v1a1/mono.m3u8", timeout=2).read().decode()
        return [l for l in body.splitlines() if l.endswith(".ts")]
    except Exception:
        return []
seen = {}
end = time.time() + 40
while time.time() < end:
    now = time.time()
    for side, base in (("origin", origin), ("edge", edge)):
        for name in names(base):
            seen.setdefault(name, {}).setdefault(side, now)
    time.sleep(0.02)
delays = sorted((s["edge"] - s["origin"]) * 1000 for s in seen.values() if "origin" in s and "edge" in s)
# The first names were in both windows before the poll began.
delays = delays[4:] if len(delays) > 8 else delays
print(f"   segments: {len(delays)}; edge after origin: median {delays[len(delays)//2]:.0f} ms, max {max(delays):.0f} ms (poll every 20 ms)")
PY

echo "== 4. $VIEWERS HLS viewers: relayed stream on the edge vs local stream on the origin"
for side in edge origin; do
    if [ "$side" = edge ]; then at=127.0.0.2:$PORT; pid=$EDGE_PID; else at=127.0.0.1:$PORT; pid=$ORIGIN_PID; fi
    echo "-- $side"
    $BIN bench --protocol hls --viewers "$VIEWERS" --duration 60 --ramp 20 --http "$at" --pid "$pid" 2>&1 | tail -4
done

