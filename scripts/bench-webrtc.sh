#!/usr/bin/env bash
# WebRTC figures (docs/benchmarks.md "WebRTC"):
# 1. node CPU for VIEWERS viewers of one 2 Mbit/s stream (H.264 720p30 at 2 Mbit/s + AAC
#    128 kbit/s, an MPEG-TS file the node loops), over WebRTC (WHEP: the video, SRTP per
#    viewer), RTMP and HLS, side by side in alternating rounds, the node in its own
#    process and `flotilla bench --http` as the load generator; the node's CPU with no
#    viewer is measured first and subtracted;
# 2. node memory per WebRTC viewer (peak RSS with the viewers minus RSS before them);
# 3. WHEP time to first frame: flotilla's WHEP client (offer POST → first whole picture,
#    every viewer of the run) and Chromium (offer → first decoded frame, the ignored test
#    `whep_time_to_first_frame_in_chromium` in tests/browser_webrtc.rs).
#
#   apt-get install -y ffmpeg chromium
#   scripts/bench-webrtc.sh [VIEWERS] [DURATION_S] [ROUNDS]     # defaults: 100, 30, 3
#
# Environment: FLOTILLA=PATH uses that binary instead of building `--profile lto`.
set -euo pipefail
cd "$(dirname "$0")/.."
VIEWERS="${1:-100}"
DURATION="${2:-30}"
ROUNDS="${3:-3}"
if [ -n "${FLOTILLA:-}" ]; then
    BIN="$FLOTILLA"
else
    cargo build --profile lto --quiet --bin flotilla
    BIN=target/lto/flotilla
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work="$(mktemp -d)"
node_pid=""
cleanup() {
    [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

echo "== a 2 Mbit/s clip (20 s, 720p30 H.264 + AAC)"
ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 20 -c:v libx264 -preset veryfast -b:v 2M -maxrate 2M -bufsize 2M -g 60 -pix_fmt yuv420p \
    -c:a aac -b:a 128k -f mpegts "$work/2m.ts"

http=18480
rtmp=18481
cat > "$work/flotilla.conf" <<CONF
http 127.0.0.1:$http;
rtmp 127.0.0.1:$rtmp;
webrtc_ports 30000-30999;
loglevel error;
stream test { input file://$work/2m.ts; segment_duration 2; segment_count 4; }
CONF
"$BIN" run --config "$work/flotilla.conf" > "$work/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$http/test/mono.m3u8" > /dev/null && break
    sleep 0.2
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$node_pid/stat"; }
before=$(cpu_ticks)
sleep 10
idle=$(( $(cpu_ticks) - before ))
echo "node without viewers: cpu=$((idle * 10 / 10))% (ticks per 10 s = % of a core)"

for round in $(seq "$ROUNDS"); do
    for protocol in webrtc rtmp hls; do
        echo "== round $round: $VIEWERS $protocol viewers, $DURATION s"
        "$BIN" bench --protocol "$protocol" --viewers "$VIEWERS" --duration "$DURATION" --ramp 5 \
            --http "127.0.0.1:$http" --rtmp-port "$rtmp" --pid "$node_pid" | grep -E "errors=|throughput|first_frame|cpu="
    done
done

[ -n "${SKIP_CHROMIUM:-}" ] && exit 0
echo "== time to first frame in Chromium"
cargo test --release --quiet --test browser_webrtc -- --ignored --exact whep_time_to_first_frame_in_chromium --nocapture 2>&1 |
    grep -E "first_frame|panicked|error" || true
