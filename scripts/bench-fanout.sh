#!/usr/bin/env bash
# Fan-out against the servers a user would pick instead, side by side on this machine:
# flotilla against nginx-rtmp (RTMP players) and nginx (HLS), same stream, same clients.
#
#   apt-get install -y nginx-light libnginx-mod-rtmp wrk ffmpeg curl
#   scripts/bench-fanout.sh [ROUNDS] [RTMP_PLAYERS] [HLS_VIEWERS]   # defaults: 3, 1000, 5000
#
# The stream: H.264 720p30 at 2 Mbit/s + AAC 128 kbit/s, 2 s GOPs, looped by ffmpeg from a
# generated 20 s file and published over RTMP to both servers (`-c copy`). nginx's HLS is
# what ffmpeg's HLS muxer writes from the same file into the directory nginx serves (2 s
# segments, 8 in the playlist) — how nginx serves HLS it did not package; flotilla
# packages its own (2 s segments, `segment_count 8`).
#
# Measures, each round running both servers back to back (flotilla first in odd rounds,
# the peer first in even ones); the summary is the median of the per-round ratios:
# 1. rtmp: RTMP_PLAYERS players (`flotilla bench --protocol rtmp`) for 25 s: Gbit
#    delivered per second of server CPU (= Gbit/s per core), and memory per player (peak
#    RSS less RSS before the players). nginx-rtmp runs one worker (its live streams are
#    per worker without `rtmp_auto_push`).
# 2. segment: GETs/s of one HLS TS segment (~0.5 MB), wrk -t2 -c64, 10 s; nginx serves a
#    copy of the same segment;
# 3. playlist: GETs/s of the media playlist, wrk -t2 -c64, 10 s; nginx serves a copy of
#    flotilla's (the same bytes);
# 4. hls: HLS_VIEWERS paced viewers (`flotilla bench --protocol hls`, one connection and
#    session each, playlist + every new segment) for 40 s: Gbit/s per server core.
# 5. mpegts: RTMP_PLAYERS HTTP-MPEG-TS viewers of flotilla (`/test/mpegts`) against as
#    many RTMP players of nginx-rtmp, for 25 s: Gbit/s per server core. nginx has no live
#    HTTP-MPEG-TS; an RTMP player is the same kind of viewer (the stream, paced by the
#    source, on one TCP connection), and nginx-rtmp is what a user runs for it.
# nginx serves HTTP with 2 workers (`worker_processes auto` here), `sendfile on`.
# Server CPU is utime + stime of the server's processes (/proc) over the run; the load
# generator shares the two cores, which is why rounds are paired.
#
# Environment: FLOTILLA=PATH runs that binary instead of building `--profile lto`;
# MEASURES="rtmp mpegts segment playlist hls" picks measures; WARM_UP_S (default 90) is how long
# both servers run their stream before the first measure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-3}"
RTMP_PLAYERS="${2:-1000}"
HLS_VIEWERS="${3:-5000}"
read -r -a MEASURES <<< "${MEASURES:-rtmp mpegts segment playlist hls}"
RTMP_SECONDS=25
WRK_SECONDS=10
HLS_SECONDS=40
WARM_UP_S="${WARM_UP_S:-90}"
FL_HTTP=18701
FL_RTMP=18702
NG_HTTP=18711
NG_RTMP=18712
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in wrk nginx ffmpeg curl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install -y nginx-light libnginx-mod-rtmp wrk ffmpeg curl)" >&2; exit 1; }
done
RTMP_MODULE=/usr/lib/nginx/modules/ngx_rtmp_module.so
[ -f "$RTMP_MODULE" ] || { echo "nginx-rtmp is missing (apt-get install -y libnginx-mod-rtmp)" >&2; exit 1; }
if [ -n "${FLOTILLA:-}" ]; then
    BIN="$FLOTILLA"
else
    cargo build --profile lto --quiet --bin flotilla
    BIN=target/lto/flotilla
fi
# Thousands of viewers: descriptors for the generator and both servers.
ulimit -n "$(ulimit -Hn)"

ffmpeg -v error -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 \
    -t 20 -c:v libx264 -preset veryfast -b:v 2M -maxrate 2M -bufsize 2M -g 60 -keyint_min 60 \
    -sc_threshold 0 -pix_fmt yuv420p -c:a aac -b:a 128k -f mpegts "$WORK/2m.ts"

# flotilla
cat > "$WORK/flotilla.conf" <<CONF
http 127.0.0.1:$FL_HTTP;
rtmp 127.0.0.1:$FL_RTMP;
loglevel error;
stream test { input publish://; segment_duration 2; segment_count 8; }
CONF
"$BIN" run -c "$WORK/flotilla.conf" > "$WORK/flotilla.log" 2>&1 &
FLOTILLA_PID=$!
PIDS+=("$FLOTILLA_PID")
for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$FL_HTTP/flotilla/api/health" && break
    sleep 0.1
done
publish() { # URL: ffmpeg loops the file into it in real time
    ffmpeg -v error -re -stream_loop -1 -i "$WORK/2m.ts" -c copy -f flv "$1" </dev/null >> "$WORK/ffmpeg.log" 2>&1 &
    PIDS+=($!)
}
publish "rtmp://127.0.0.1:$FL_RTMP/static/test"

# nginx + nginx-rtmp, and ffmpeg's HLS of the same file under flotilla's paths
WWW="$WORK/www"
mkdir -p "$WWW/test/tracks-v1a1" "$WORK/nginx"
chmod 755 "$WORK"
cat > "$WORK/nginx-http.conf" <<CONF
worker_processes 2;
pid $WORK/nginx/http.pid;
error_log $WORK/nginx/http-error.log error;
daemon off;
events { worker_connections 16384; }
worker_rlimit_nofile 20000;
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server { listen 127.0.0.1:$NG_HTTP; root $WWW; }
}
CONF
cat > "$WORK/nginx-rtmp.conf" <<CONF
load_module $RTMP_MODULE;
worker_processes 1;
pid $WORK/nginx/rtmp.pid;
error_log $WORK/nginx/rtmp-error.log error;
daemon off;
events { worker_connections 16384; }
worker_rlimit_nofile 20000;
rtmp {
    server {
        listen 127.0.0.1:$NG_RTMP;
        chunk_size 4096;
        application static { live on; }
    }
}
CONF
nginx -e "$WORK/nginx/http-error.log" -p "$WORK/nginx" -c "$WORK/nginx-http.conf" &
NGINX_HTTP_PID=$!
PIDS+=("$NGINX_HTTP_PID")
nginx -e "$WORK/nginx/rtmp-error.log" -p "$WORK/nginx" -c "$WORK/nginx-rtmp.conf" &
NGINX_RTMP_PID=$!
PIDS+=("$NGINX_RTMP_PID")
sleep 0.5
publish "rtmp://127.0.0.1:$NG_RTMP/static/test"
ffmpeg -v error -re -stream_loop -1 -i "$WORK/2m.ts" -c copy -f hls -hls_time 2 -hls_list_size 8 \
    -hls_flags delete_segments+temp_file -hls_segment_filename "$WWW/test/tracks-v1a1/segment%d.ts" \
    "$WWW/test/tracks-v1a1/mono.m3u8" </dev/null >> "$WORK/ffmpeg.log" 2>&1 &
PIDS+=($!)
# `flotilla bench` waits for /test/mono.m3u8 before it starts.
echo "#EXTM3U" > "$WWW/test/mono.m3u8"
chmod -R a+rX "$WWW"
NGINX_HTTP_WORKERS=$(ps -o pid= --ppid "$NGINX_HTTP_PID" | xargs)
NGINX_RTMP_WORKER=$(ps -o pid= --ppid "$NGINX_RTMP_PID" | xargs)

FL_PLAYLIST="http://127.0.0.1:$FL_HTTP/test/tracks-v1a1/mono.m3u8"
newest_segment() { curl -sf "$1" | grep -v '^#' | tail -n 1; }
for _ in $(seq 1 150); do
    [ "$(curl -sf "$FL_PLAYLIST" | grep -c '\.ts' || true)" -ge 4 ] \
        && [ -s "$WWW/test/tracks-v1a1/mono.m3u8" ] && break
    sleep 0.2
done
[ -n "$(newest_segment "$FL_PLAYLIST" || true)" ] \
    || { echo "no segment in $FL_PLAYLIST" >&2; cat "$WORK/flotilla.log" "$WORK/ffmpeg.log" >&2; exit 1; }

# flotilla's memory grows until its stream's window (the segments of every format, and
# those just out of the playlists) is full; players measured before that would be
# charged for it.
echo "warming up for ${WARM_UP_S}s (flotilla's segment window fills)" >&2
sleep "$WARM_UP_S"

HZ=$(getconf CLK_TCK)
cpu_ticks() {
    local total=0 pid
    for pid in "$@"; do
        total=$(( total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
    done
    echo "$total"
}
pids_of() { # SERVER MEASURE: the processes that do the serving
    case "$1,$2" in
        flotilla,*) echo "$FLOTILLA_PID" ;;
        nginx,rtmp | nginx,mpegts) echo "$NGINX_RTMP_WORKER" ;;
        nginx,*) echo "$NGINX_HTTP_WORKERS" ;;
    esac
}

# bench SERVER PROTOCOL VIEWERS SECONDS: "RESULT gbit_per_core kib_per_viewer errors"
bench() {
    local server="$1" protocol="$2" viewers="$3" seconds="$4" http rtmp pids before after out mb per_core kib errors
    if [ "$server" = flotilla ]; then http=$FL_HTTP rtmp=$FL_RTMP; else http=$NG_HTTP rtmp=$NG_RTMP; fi
    pids=$(pids_of "$server" "$protocol")
    # shellcheck disable=SC2086
    before=$(cpu_ticks $pids)
    # shellcheck disable=SC2086
    out=$("$BIN" bench --protocol "$protocol" --viewers "$viewers" --duration "$seconds" --ramp 5 \
        --http "127.0.0.1:$http" --rtmp-port "$rtmp" --pid ${pids%% *})
    # shellcheck disable=SC2086
    after=$(cpu_ticks $pids)
    mb=$(echo "$out" | sed -n 's/.*delivered=\([0-9.]*\)MB.*/\1/p')
    errors=$(echo "$out" | sed -n 's/.* errors=\([0-9]*\).*/\1/p')
    kib=$(echo "$out" | sed -n 's/.*, \([0-9]*\)KiB per viewer.*/\1/p')
    per_core=$(awk -v mb="$mb" -v t="$(( after - before ))" -v hz="$HZ" 'BEGIN {printf "%.2f", (t > 0) ? mb * 8 / 1000 / (t / hz) : 0}')
    echo "   $server $protocol: ${mb} MB, CPU $(awk -v t="$(( after - before ))" -v hz="$HZ" -v s="$seconds" 'BEGIN {printf "%.0f", t / hz / s * 100}') %, $per_core Gbit/s per core, ${kib} KiB per viewer (process ${pids%% *}), errors $errors" >&2
    echo "RESULT $per_core $kib $errors"
}

# get SERVER MEASURE: wrk against one file; "RESULT rps cpu_us_per_request". nginx
# serves the same bytes as flotilla: a copy of flotilla's newest segment, or of its
# media playlist, taken just before.
get() {
    local server="$1" measure="$2" name url pids before after out requests rps per
    local live="http://127.0.0.1:$FL_HTTP/test/tracks-v1a1"
    if [ "$measure" = playlist ]; then
        name=mono.m3u8
    else
        name=$SEGMENT
    fi
    if [ "$server" = flotilla ]; then
        url="$live/$name"
    else
        mkdir -p "$WWW/copy"
        curl -sf --create-dirs -o "$WWW/copy/$name" "$live/$name"
        chmod -R a+rX "$WWW/copy"
        url="http://127.0.0.1:$NG_HTTP/copy/$name"
    fi
    pids=$(pids_of "$server" "$measure")
    # shellcheck disable=SC2086
    before=$(cpu_ticks $pids)
    out=$(wrk -t2 -c64 -d"${WRK_SECONDS}s" "$url")
    # shellcheck disable=SC2086
    after=$(cpu_ticks $pids)
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    per=$(( (after - before) * 1000000 / HZ / (requests > 0 ? requests : 1) ))
    echo "   $server $measure ($(curl -sf "$url" | wc -c) B): $rps req/s, server CPU $per µs/request $(echo "$out" | grep -E "Socket errors|Non-2xx" | tr -s ' ' | tr '\n' ';' || true)" >&2
    echo "RESULT $rps $per"
}

measure_once() { # SERVER MEASURE
    case "$2" in
        rtmp) bench "$1" rtmp "$RTMP_PLAYERS" "$RTMP_SECONDS" ;;
        mpegts)
            if [ "$1" = flotilla ]; then
                bench flotilla mpegts "$RTMP_PLAYERS" "$RTMP_SECONDS"
            else
                bench nginx rtmp "$RTMP_PLAYERS" "$RTMP_SECONDS"
            fi
            ;;
        hls) bench "$1" hls "$HLS_VIEWERS" "$HLS_SECONDS" ;;
        segment | playlist) get "$1" "$2" ;;
    esac
}

echo "== $("$BIN" --version 2>/dev/null || echo flotilla) ($BIN); $(nginx -v 2>&1 | sed 's/.*: //') + nginx-rtmp $(dpkg-query -W -f '${Version}' libnginx-mod-rtmp 2>/dev/null || echo '?'); $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
declare -A FL NG FLX NGX RATIO
for round in $(seq 1 "$ROUNDS"); do
    echo "== round $round ($( (( round % 2 )) && echo "flotilla first" || echo "nginx first"))"
    for measure in "${MEASURES[@]}"; do
        # The segment both servers serve: the newest now stays in flotilla's window
        # (8 × 2 s) through the two wrk runs.
        SEGMENT=$(newest_segment "$FL_PLAYLIST")
        if (( round % 2 )); then
            ours=$(measure_once flotilla "$measure"); theirs=$(measure_once nginx "$measure")
        else
            theirs=$(measure_once nginx "$measure"); ours=$(measure_once flotilla "$measure")
        fi
        read -r _ "FL[$measure,$round]" "FLX[$measure,$round]" _ <<< "$ours"
        read -r _ "NG[$measure,$round]" "NGX[$measure,$round]" _ <<< "$theirs"
        RATIO["$measure,$round"]=$(awk -v a="${FL[$measure,$round]}" -v b="${NG[$measure,$round]}" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')
    done
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
column_of() { local -n values="$1"; local round; for round in $(seq 1 "$ROUNDS"); do echo "${values[$2,$round]}"; done; }
unit_of() {
    case "$1" in
        rtmp | hls | mpegts) echo "Gbit/s per core (KiB/viewer)" ;;
        *) echo "req/s (server µs/req)" ;;
    esac
}
echo
echo "== summary: $ROUNDS paired rounds; ratio = flotilla ÷ nginx(-rtmp), higher is better for flotilla"
printf '%-9s %-30s %-22s %-22s %s\n' measure unit flotilla nginx "ratio per round -> median"
for measure in "${MEASURES[@]}"; do
    # shellcheck disable=SC2046
    printf '%-9s %-30s %-22s %-22s %s -> %s\n' "$measure" "$(unit_of "$measure")" \
        "$(median $(column_of FL "$measure")) ($(median $(column_of FLX "$measure")))" \
        "$(median $(column_of NG "$measure")) ($(median $(column_of NGX "$measure")))" \
        "$(column_of RATIO "$measure" | tr '\n' ' ')" "$(median $(column_of RATIO "$measure"))"
done
