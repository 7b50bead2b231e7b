#!/usr/bin/env bash
# RTSP camera ingest: what one camera costs a node (CPU and memory), beside what it costs
# ffmpeg, the tool an operator would otherwise run per camera (`-c copy` to HLS).
#
#   scripts/bench-rtsp.sh [CAMERAS] [ROUNDS]      # defaults: 100 cameras, 3 rounds
#
# A GStreamer RTSP server (the library tests/common/rtsp_camera.py drives) serves a
# pre-encoded 2 Mbit/s H.264 720p25 clip with AAC, paced in real time, one pipeline per
# client (a shared media stalls every client behind one slow TCP reader): the cameras
# cost no encoding, and their CPU is not the node's. A fresh server for each measure.
# Each round, in alternating order:
# - flotilla: one node with CAMERAS streams `input rtsp://…/cam` (RTP interleaved on TCP);
# - ffmpeg: CAMERAS processes `ffmpeg -rtsp_transport tcp -i rtsp://…/cam -c copy -f hls`;
# each measured over 20 s once all cameras play: CPU (one core = 100 %) and RSS.
# Reports cameras per core (CAMERAS / CPU share) and RSS per camera, per round and the
# median of the paired ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
CAMERAS="${1:-100}"
ROUNDS="${2:-3}"
PORT=18680
RTSP_PORT=18654
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    pkill -f "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build --profile lto --quiet --bin flotilla
BIN=target/lto/flotilla

echo "== encoding the camera clip (2 Mbit/s H.264 720p25 without B-frames, as cameras send, + AAC, 180 s)"
ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 180 -c:v libx264 -preset veryfast -bf 0 -b:v 2M -maxrate 2M -bufsize 4M -g 50 -pix_fmt yuv420p \
    -c:a aac -b:a 64k -f mpegts "$WORK/cam.ts"

cat > "$WORK/camera.py" <<'PY'
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(sys.argv[1])
# A hundred clients connect at once; GStreamer's default backlog of 5 refuses most.
server.set_backlog(1024)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    f"( filesrc location={sys.argv[2]} ! tsdemux name=d "
    "d. ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 "
    "d. ! queue ! aacparse ! rtpmp4gpay name=pay1 pt=97 )"
)
factory.set_shared(False)
server.get_mount_points().add_factory("/cam", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
PY
CAMERA="rtsp://127.0.0.1:$RTSP_PORT/cam"
start_camera() {
    rm -f "$WORK/camera.log"
    /usr/bin/python3 "$WORK/camera.py" "$RTSP_PORT" "$WORK/cam.ts" > "$WORK/camera.log" 2>&1 &
    CAMERA_PID=$!
    PIDS+=("$CAMERA_PID")
    for _ in $(seq 1 100); do grep -q ready "$WORK/camera.log" 2>/dev/null && return; sleep 0.1; done
    echo "the camera did not start" >&2
    exit 1
}
stop_camera() { kill "$CAMERA_PID" 2>/dev/null || true; wait "$CAMERA_PID" 2>/dev/null || true; }

cpu_ticks() { # PIDS… : user+system clock ticks of all of them
    local total=0
    for pid in "$@"; do
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
rss_kib() { # PIDS…
    local total=0
    for pid in "$@"; do
        total=$(( total + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)
WINDOW=20
measure() { # PIDS… → "cpu_percent rss_kib"
    local t0 t1
    t0=$(cpu_ticks "$@")
    sleep "$WINDOW"
    t1=$(cpu_ticks "$@")
    echo "$(( (t1 - t0) * 100 / HZ / WINDOW )) $(rss_kib "$@")"
}

run_flotilla() {
    start_camera
    local conf="$WORK/flotilla.conf"
    printf 'http 127.0.0.1:%s;\nloglevel error;\n' "$PORT" > "$conf"
    for i in $(seq 1 "$CAMERAS"); do
        printf 'stream cam%s { input %s; segment_duration 2; }\n' "$i" "$CAMERA" >> "$conf"
    done
    $BIN run -c "$conf" > "$WORK/flotilla.log" 2>&1 &
    local pid=$!
    # Every camera playing: all streams alive.
    for _ in $(seq 1 120); do
        alive=$(curl -s "http://127.0.0.1:$PORT/streamer/api/v3/config/stats" \
            | python3 -c "import json,sys; print(json.load(sys.stdin).get('online_streams', 0))" 2>/dev/null || echo 0)
        [ "$alive" -ge "$CAMERAS" ] && break
        sleep 1
    done
    sleep 5
    local result
    result=$(measure "$pid")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    stop_camera
    # Printed last: the caller reads it once everything this run started has stopped.
    echo "$result"
}

run_ffmpeg() {
    start_camera
    local pids=()
    for i in $(seq 1 "$CAMERAS"); do
        mkdir -p "$WORK/ff$i"
        ffmpeg -v error -rtsp_transport tcp -i "$CAMERA" -c copy -f hls -hls_time 2 \
            -hls_list_size 4 -hls_flags delete_segments "$WORK/ff$i/index.m3u8" </dev/null &
        pids+=($!)
        sleep 0.02
    done
    sleep 15
    local result
    result=$(measure "${pids[@]}")
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    rm -rf "$WORK"/ff*
    stop_camera
    echo "$result"
}

echo "== $CAMERAS cameras, $ROUNDS paired rounds (CPU: one core = 100 %)"
ratios=()
for round in $(seq 1 "$ROUNDS"); do
    if (( round % 2 )); then
        f=$(run_flotilla); m=$(run_ffmpeg)
    else
        m=$(run_ffmpeg); f=$(run_flotilla)
    fi
    read -r f_cpu f_rss <<< "$f"
    read -r m_cpu m_rss <<< "$m"
    f_per_core=$(( CAMERAS * 100 / (f_cpu > 0 ? f_cpu : 1) ))
    m_per_core=$(( CAMERAS * 100 / (m_cpu > 0 ? m_cpu : 1) ))
    echo "round $round: flotilla ${f_cpu}% CPU, $(( f_rss / CAMERAS )) KiB/camera → ${f_per_core} cameras/core;" \
        "ffmpeg ${m_cpu}% CPU, $(( m_rss / CAMERAS )) KiB/camera → ${m_per_core} cameras/core"
    ratios+=("$(python3 -c "print(round($m_cpu / max($f_cpu, 1), 2))")")
done
echo "ffmpeg CPU / flotilla CPU per round: ${ratios[*]} (median $(printf '%s\n' "${ratios[@]}" | sort -n | sed -n "$(( (ROUNDS + 1) / 2 ))p"))"
